// KafkaProducer's transactions against librdkafka's in-process mock cluster, which can make a broker
// answer a request with a chosen error: the errors a real broker gives only under faults.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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
  static constexpr int32_t kBroker = 1;  // the id of the cluster's only broker

  // The values of kTopic as a read_committed consumer reads them, up to the partition's end.
  std::vector<std::string> ReadCommitted() {
    auto consumer = KafkaConsumer::Make({{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster_)},
                                         {"group.id", "read-back"},
                                         {"auto.offset.reset", "earliest"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.partition.eof", "true"}},
                                        {kTopic});
    EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
    std::vector<std::string> values;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = (*consumer)->Poll(std::chrono::milliseconds(500));
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      if (!m.ok() || !*m) continue;
      if ((*m)->end_of_partition) return values;
      values.push_back((*m)->value.value_or(""));
    }
    ADD_FAILURE() << "no end of partition within 60 s";
    return values;
  }

  std::unique_ptr<KafkaProducer> TransactionalProducer() {
    auto producer = KafkaProducer::Make({{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster_)},
                                         {"transactional.id", "mock-test"},
                                         {"transaction.timeout.ms", "60000"}});
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

// A commit that times out goes on in the background: CommitTransaction resumes it (an abort would
// conflict with it) until the coordinator answers, and the records are committed once.
TEST(KafkaTransactionMockTest, ACommitWhoseEndTxnAnswersLateIsResumedUntilItCommits) {
  MockCluster cluster;
  auto producer = cluster.TransactionalProducer();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  ASSERT_TRUE(producer->Produce(kTopic, "k", "a").ok());
  ASSERT_TRUE(producer->Produce(kTopic, "k", "b").ok());
  // The coordinator answers EndTxn after 3 s; each attempt of the commit waits 1 s.
  rd_kafka_mock_broker_push_request_error_rtts(cluster.get(), MockCluster::kBroker, kEndTxnApiKey, 1,
                                               RD_KAFKA_RESP_ERR_NO_ERROR, 3000);
  Status commit = producer->CommitTransaction(std::chrono::seconds(1));
  ASSERT_TRUE(commit.ok()) << commit.ToString();
  EXPECT_EQ(cluster.ReadCommitted(), (std::vector<std::string>{"a", "b"}));
}

// The fault the campaign found: the broker goes down during the commit, whose flush times out.
TEST(KafkaTransactionMockTest, ACommitRidesOutABrokerThatIsDownForAWhile) {
  MockCluster cluster;
  auto producer = cluster.TransactionalProducer();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  rd_kafka_mock_broker_set_down(cluster.get(), MockCluster::kBroker);
  ASSERT_TRUE(producer->Produce(kTopic, "k", "a").ok());
  std::thread restart([&cluster] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    rd_kafka_mock_broker_set_up(cluster.get(), MockCluster::kBroker);
  });
  Status commit = producer->CommitTransaction(std::chrono::seconds(1));
  restart.join();
  ASSERT_TRUE(commit.ok()) << commit.ToString();
  EXPECT_EQ(cluster.ReadCommitted(), (std::vector<std::string>{"a"}));
}

// The coordinator's retriable refusals of EndTxn (librdkafka retries these itself) end in one commit.
TEST(KafkaTransactionMockTest, ACommitTheCoordinatorIsNotReadyForIsRetried) {
  MockCluster cluster;
  auto producer = cluster.TransactionalProducer();
  ASSERT_TRUE(producer->BeginTransaction().ok());
  ASSERT_TRUE(producer->Produce(kTopic, "k", "a").ok());
  rd_kafka_mock_push_request_errors(cluster.get(), kEndTxnApiKey, 3, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  Status commit = producer->CommitTransaction(std::chrono::seconds(30));
  ASSERT_TRUE(commit.ok()) << commit.ToString();
  EXPECT_EQ(cluster.ReadCommitted(), (std::vector<std::string>{"a"}));
}

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
