// Needs the local stack (make up): produces and consumes real messages through the Kafka broker.
#include "m2m/kafka_client.h"

#include <gtest/gtest.h>

#include "test_env.h"

namespace m2m {
namespace {

using namespace std::chrono_literals;

TEST(KafkaClientTest, ProducesAndConsumesKeyedMessagesInOrder) {
  KafkaConfig base = testing::StackKafkaConfig();
  std::string topic = testing::UniqueName("t_kafka");
  auto admin = KafkaAdmin::Make(base);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  M2M_ASSERT_OK((*admin)->CreateTopic(topic, 3));

  auto producer = KafkaProducer::Make(base);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE((*producer)->Produce(topic, "doc-1", "v" + std::to_string(i)).ok());
  }
  ASSERT_TRUE((*producer)->Produce(topic, "doc-2", std::nullopt).ok());  // tombstone
  ASSERT_TRUE((*producer)->Flush().ok());

  KafkaConfig cc = base;
  cc["group.id"] = testing::UniqueName("g");
  cc["auto.offset.reset"] = "earliest";
  auto consumer = KafkaConsumer::Make(cc, {topic});
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  std::vector<std::string> doc1;
  bool saw_tombstone = false;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while ((doc1.size() < 10 || !saw_tombstone) && std::chrono::steady_clock::now() < deadline) {
    auto m = (*consumer)->Poll(500ms);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    if (!m->has_value()) continue;
    const KafkaMessage& msg = **m;
    EXPECT_EQ(msg.topic, topic);
    if (msg.key == "doc-1") doc1.push_back(*msg.value);
    if (msg.key == "doc-2") saw_tombstone = !msg.value.has_value();
  }
  ASSERT_EQ(doc1.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(doc1[i], "v" + std::to_string(i));  // one key, one partition, in order
  EXPECT_TRUE(saw_tombstone);
  consumer->reset();
  EXPECT_TRUE((*admin)->DeleteTopic(topic).ok());
}

TEST(KafkaClientTest, TopicConfigGivesTheTopicsOwnSettingsAndTheBrokersDefaults) {
  KafkaConfig base = testing::StackKafkaConfig();
  std::string topic = testing::UniqueName("t_conf");
  auto admin = KafkaAdmin::Make(base);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  M2M_ASSERT_OK((*admin)->CreateTopic(topic, 1, {{"max.message.bytes", "5000000"}}));
  auto config = (*admin)->TopicConfig(topic);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->at("max.message.bytes"), "5000000");
  EXPECT_EQ(config->at("cleanup.policy"), "delete");  // not set on the topic: the broker's default
  EXPECT_TRUE((*admin)->DeleteTopic(topic).ok());

  auto missing = (*admin)->TopicConfig(testing::UniqueName("t_missing"), 2s);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("t_missing"), std::string::npos) << missing.status().message();
}

TEST(KafkaClientTest, UnknownPropertyIsAnErrorNamingTheKey) {
  KafkaConfig c = testing::StackKafkaConfig();
  c["no.such.property"] = "1";
  auto producer = KafkaProducer::Make(c);
  ASSERT_FALSE(producer.ok());
  EXPECT_EQ(producer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(producer.status().message().find("kafka.no.such.property"), std::string::npos);
}

}  // namespace
}  // namespace m2m

namespace m2m {
namespace {

using namespace std::chrono_literals;

// What capture's checkpointing stands on: a committed transaction is seen whole by read_committed
// readers, an aborted one never, and a restarted producer with the same transactional.id fences the
// old one and aborts its open transaction.
TEST(KafkaTransactionTest, OnlyCommittedTransactionsAreReadAndRestartAbortsTheOpenOne) {
  KafkaConfig base = testing::StackKafkaConfig();
  std::string topic = testing::UniqueName("t_txn");
  auto admin = KafkaAdmin::Make(base);
  ASSERT_TRUE(admin.ok());
  M2M_ASSERT_OK((*admin)->CreateTopic(topic, 2, {{"cleanup.policy", "compact"}}));

  KafkaConfig pc = base;
  pc["transactional.id"] = testing::UniqueName("txn");
  {
    auto p = KafkaProducer::Make(pc);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    M2M_ASSERT_OK((*p)->InitTransactions());
    M2M_ASSERT_OK((*p)->BeginTransaction());
    M2M_ASSERT_OK((*p)->Produce(topic, "a", "1"));
    M2M_ASSERT_OK((*p)->Produce(topic, "b", "1"));
    M2M_ASSERT_OK((*p)->CommitTransaction());

    M2M_ASSERT_OK((*p)->BeginTransaction());
    M2M_ASSERT_OK((*p)->Produce(topic, "a", "aborted"));
    // Delivered first: an abort that overtakes the partition's registration with the coordinator
    // fails, fatally, with INVALID_TXN_STATE now and then (librdkafka issue #4849, open); capture then
    // restarts from its checkpoint, which this test is not about.
    M2M_ASSERT_OK((*p)->Flush());
    M2M_ASSERT_OK((*p)->AbortTransaction());

    M2M_ASSERT_OK((*p)->BeginTransaction());
    M2M_ASSERT_OK((*p)->Produce(topic, "a", "2"));
    M2M_ASSERT_OK((*p)->Produce(topic, "b", std::nullopt));  // tombstone erases b
    M2M_ASSERT_OK((*p)->CommitTransaction());

    // Left open, as a crash would leave it.
    M2M_ASSERT_OK((*p)->BeginTransaction());
    M2M_ASSERT_OK((*p)->Produce(topic, "a", "open"));
    M2M_ASSERT_OK((*p)->Flush());
  }  // destroyed without commit: librdkafka does not commit on close

  auto restarted = KafkaProducer::Make(pc);
  ASSERT_TRUE(restarted.ok());
  M2M_ASSERT_OK((*restarted)->InitTransactions());

  auto latest = ReadTopicToEnd(base, topic, 60s);
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, (std::map<std::string, std::string>{{"a", "2"}}));

  EXPECT_TRUE((*admin)->DeleteTopic(topic).ok());
}

TEST(KafkaTransactionTest, ReadingAMissingTopicIsAnErrorNamingIt) {
  auto latest = ReadTopicToEnd(testing::StackKafkaConfig(), testing::UniqueName("t_missing"), 20s);
  ASSERT_FALSE(latest.ok());
  EXPECT_NE(latest.status().message().find("t_missing"), std::string::npos) << latest.status().message();
}

}  // namespace
}  // namespace m2m
