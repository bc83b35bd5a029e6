// KafkaProducer's transactions against librdkafka's in-process mock cluster, which can make a broker
// answer a request with a chosen error: the errors a real broker gives only under faults.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <gtest/gtest.h>

#include <memory>

#include "m2m/kafka_client.h"

namespace m2m {
namespace {

// Kafka protocol API keys; librdkafka keeps its names for them internal.
constexpr int16_t kProduceApiKey = 0;
constexpr int16_t kAddPartitionsToTxnApiKey = 24;
constexpr int16_t kEndTxnApiKey = 26;
constexpr char kTopic[] = "t";

class MockCluster {
 public:
  MockCluster() {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cluster_ = rd_kafka_mock_cluster_new(rk_, 1);
    rd_kafka_mock_topic_create(cluster_, kTopic, 1, 1);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(rk_);
  }
  rd_kafka_mock_cluster_t* get() { return cluster_; }

  std::unique_ptr<KafkaProducer> TransactionalProducer() {
    auto producer = KafkaProducer::Make({{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster_)},
                                         {"transactional.id", "mock-test"},
                                         {"transaction.timeout.ms", "10000"}});
    EXPECT_TRUE(producer.ok()) << producer.status().ToString();
    EXPECT_TRUE((*producer)->InitTransactions(std::chrono::seconds(30)).ok());
    return std::move(*producer);
  }

 private:
  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* cluster_;
};

// The broker's answer to one request of a transaction, which librdkafka makes an abortable error.
struct AbortableCase {
  int16_t api_key;
  rd_kafka_resp_err_t error;
};

class AbortableErrorTest : public ::testing::TestWithParam<AbortableCase> {};

TEST_P(AbortableErrorTest, IsRetriableAndTheNextTransactionCommitsAfterTheAbort) {
  MockCluster cluster;
  auto producer = cluster.TransactionalProducer();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  rd_kafka_mock_push_request_errors(cluster.get(), GetParam().api_key, 1, GetParam().error);
  ASSERT_TRUE(producer->Produce(kTopic, "k", "v").ok());
  Status commit = producer->CommitTransaction(std::chrono::seconds(30));
  ASSERT_FALSE(commit.ok());
  EXPECT_TRUE(commit.retriable()) << commit.ToString();
  EXPECT_NE(commit.message().find("must be aborted"), std::string::npos) << commit.ToString();
  // Records produced after the failed commit, before the abort, are refused with a retriable error.
  Status produce = producer->Produce(kTopic, "k", "v");
  if (!produce.ok()) EXPECT_TRUE(produce.retriable()) << produce.ToString();

  Status abort = producer->AbortTransaction(std::chrono::seconds(30));
  ASSERT_TRUE(abort.ok()) << abort.ToString();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  Status produce_again = producer->Produce(kTopic, "k", "v");
  ASSERT_TRUE(produce_again.ok()) << produce_again.ToString();
  Status again = producer->CommitTransaction(std::chrono::seconds(30));
  EXPECT_TRUE(again.ok()) << again.ToString();
}

INSTANTIATE_TEST_SUITE_P(
    KafkaTransactionMockTest, AbortableErrorTest,
    ::testing::Values(AbortableCase{kAddPartitionsToTxnApiKey, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED},
                      AbortableCase{kEndTxnApiKey, RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID}));

TEST(KafkaTransactionMockTest, ARecordTheBrokerRefusesForItsSizeIsNotRetriedAndNamesTheTopic) {
  MockCluster cluster;
  auto producer = cluster.TransactionalProducer();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  rd_kafka_mock_push_request_errors(cluster.get(), kProduceApiKey, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_TRUE(producer->Produce(kTopic, "k", "v").ok());
  Status commit = producer->CommitTransaction(std::chrono::seconds(30));
  ASSERT_FALSE(commit.ok());
  EXPECT_FALSE(commit.retriable()) << commit.ToString();
  EXPECT_NE(commit.message().find("delivery to t failed"), std::string::npos) << commit.ToString();
}

}  // namespace
}  // namespace m2m
