// Kafka clients: the one place where librdkafka is called.
//
// Configuration is a flat map of librdkafka properties (the `kafka.*` keys of our config files, with
// the prefix removed), so every librdkafka feature (SASL, TLS, tuning) is available unchanged.
// Errors come back as Status with code kKafka, the rd_kafka_resp_err_t as native_code, and retriable()
// as librdkafka reports it.
//
// Thread safety: each client is used by one thread; delivery reports are collected on that thread in
// Poll()/Flush().
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "m2m/status.h"

namespace m2m {

using KafkaConfig = std::map<std::string, std::string>;

struct KafkaMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;    // nullopt: no key
  std::optional<std::string> value;  // nullopt: tombstone
  int64_t timestamp_ms = 0;
  // The consumer reached the end of `partition` (only with enable.partition.eof=true): `offset` is the
  // end, key and value are empty. Under read_committed the end is the last stable offset.
  bool end_of_partition = false;
};

// Special start offsets (librdkafka's values).
inline constexpr int64_t kOffsetBeginning = -2;
inline constexpr int64_t kOffsetEnd = -1;

// A partition of a topic and a position in it.
struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  // The next offset to consume: >= 0, or kOffsetBeginning / kOffsetEnd. Default: kOffsetBeginning
  int64_t offset = kOffsetBeginning;
  friend bool operator<(const TopicPartition& a, const TopicPartition& b) {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  }
};

// Told by a KafkaConsumer when its group hands it partitions or takes them back (eager rebalancing:
// every change revokes the whole assignment, then assigns the new one). Both run on the thread that
// calls KafkaConsumer::Poll, from inside Poll (and from the consumer's destructor, for the final
// revocation); the listener must outlive the consumer.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // Before anything of `partitions` is consumed: set each one's `offset` (where to start). An error
  // leaves the consumer without partitions and is returned by the next Poll.
  virtual Status OnAssign(std::vector<TopicPartition>& partitions) = 0;
  // Before `partitions` go to another member: finish or abandon the work in flight on them.
  virtual void OnRevoke(const std::vector<TopicPartition>& partitions) = 0;
};

// Topic administration, for capture (create its topics) and tests (isolate themselves).
class KafkaAdmin {
 public:
  static Result<std::unique_ptr<KafkaAdmin>> Make(const KafkaConfig& config);
  ~KafkaAdmin();

  // Creates the topic; an existing topic is not an error. `topic_config` holds topic-level settings
  // such as cleanup.policy=compact.
  Status CreateTopic(const std::string& name, int partitions, const KafkaConfig& topic_config = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Status DeleteTopic(const std::string& name,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // The topic's effective settings (its own overrides, else the broker's defaults), by name, e.g.
  // max.message.bytes. Needs DescribeConfigs permission on the topic. A topic unknown to the broker
  // is waited for until `timeout`, as in PartitionCount.
  Result<KafkaConfig> TopicConfig(const std::string& name,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // How many partitions the topic has. A topic unknown to the broker is waited for until `timeout`
  // (a topic just created may be missing from a broker's metadata for a moment), then an error.
  Result<int> PartitionCount(const std::string& name,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  struct Impl;
  explicit KafkaAdmin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class KafkaProducer {
 public:
  static Result<std::unique_ptr<KafkaProducer>> Make(const KafkaConfig& config);
  ~KafkaProducer();

  // Queues one message; the partition follows from the key (librdkafka's default partitioner), so
  // all events of one document key keep their order. Delivery failures surface in Flush().
  Status Produce(const std::string& topic, std::optional<std::string_view> key,
                 std::optional<std::string_view> value);
  // The same, to one given partition.
  Status ProduceTo(const std::string& topic, int32_t partition, std::optional<std::string_view> key,
                   std::optional<std::string_view> value);
  // Waits until every queued message is delivered; fails with the first delivery error since the last
  // Flush.
  Status Flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Transactions (the config must set transactional.id). InitTransactions fences any earlier producer
  // with the same transactional.id and aborts its open transaction, so a restarted process never
  // publishes on top of its crashed predecessor's half-written batch. Messages produced between
  // BeginTransaction and CommitTransaction become visible to read_committed consumers together, or
  // not at all. `timeout` bounds one attempt of a commit or abort: one that times out or meets another
  // retriable error goes on in the background and is resumed, after a Backoff pause, until it
  // succeeds, turns abortable or fatal, or transaction.timeout.ms has passed since its first failure.
  // After a failed commit call AbortTransaction; when that fails too, the producer is unusable (fatal)
  // and the process must start over from its last committed checkpoint.
  Status InitTransactions(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Status BeginTransaction();
  Status CommitTransaction(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Status AbortTransaction(std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  struct Impl;
  explicit KafkaProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class KafkaConsumer {
 public:
  // Joins `config["group.id"]` and subscribes to `topics`; a name starting with '^' is a regular
  // expression matching topic names (librdkafka's pattern subscription). With a `listener`, the
  // listener chooses where each assigned partition starts (offsets kept outside Kafka); without one,
  // the group's committed offsets (or auto.offset.reset) do. A listener needs an eager assignor
  // (partition.assignment.strategy range or roundrobin, the default), which Make checks.
  static Result<std::unique_ptr<KafkaConsumer>> Make(const KafkaConfig& config,
                                                     const std::vector<std::string>& topics,
                                                     RebalanceListener* listener = nullptr);
  ~KafkaConsumer();

  // The next message, or nullopt when none arrived within `timeout`. End-of-partition notices come
  // back as messages with end_of_partition set when enable.partition.eof=true, else not at all.
  Result<std::optional<KafkaMessage>> Poll(std::chrono::milliseconds timeout);

  // Moves the positions of assigned partitions; messages already fetched from before are dropped.
  // A timeout is retriable: the positions are then unknown until a seek succeeds.
  Status Seek(const std::vector<TopicPartition>& positions,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Stops fetching `partitions` (offsets unused) and drops what was fetched of them and not yet
  // returned by Poll; Resume fetches again from the position after the last message Poll returned,
  // or from where a Seek since moved it. Partitions not assigned are left alone.
  Status Pause(const std::vector<TopicPartition>& partitions);
  Status Resume(const std::vector<TopicPartition>& partitions);
  // Commits `positions` (next offsets) to the group asynchronously, for monitoring tools that read
  // the group's lag; correctness never depends on it when offsets are kept elsewhere.
  Status CommitAsync(const std::vector<TopicPartition>& positions);
  // Offsets from the consumer's position to the end of each assigned partition, by (topic,
  // partition): the ends the last fetch responses reported (no request to the broker). A partition
  // not fetched from yet is left out.
  std::map<std::pair<std::string, int32_t>, int64_t> Lag() const;

 private:
  struct Impl;
  explicit KafkaConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A read-only look at topics as a read_committed consumer sees them, outside any consumer group: for
// `mongo2mysql status`. Each call waits at most the timeout given to Make.
class KafkaInspector {
 public:
  static Result<std::unique_ptr<KafkaInspector>> Make(const KafkaConfig& config, std::chrono::milliseconds timeout);
  ~KafkaInspector();

  // The names of every topic in the cluster; fails when no broker answers.
  Result<std::vector<std::string>> ListTopics();
  // Each partition of `topic` with `offset` set to its end: the last stable offset (records of open
  // transactions lie beyond it; the commit markers of closed ones before it).
  Result<std::vector<TopicPartition>> Ends(const std::string& topic);
  // The offsets a partition still holds: [first, end). `first` is the log start offset (the records
  // before it were deleted by retention or DeleteRecords), `end` as in Ends.
  struct Range {
    std::string topic;
    int32_t partition = 0;
    int64_t first = 0;
    int64_t end = 0;
  };
  // Each partition of `topic`, in partition order.
  Result<std::vector<Range>> Ranges(const std::string& topic);
  // The first committed record of the partition at or after `from.offset` and before `end`, or
  // nullopt when there is none (only transaction markers or aborted records lie in between).
  Result<std::optional<KafkaMessage>> FirstRecord(const TopicPartition& from, int64_t end);
  // The last committed record of the partition before `end`, or nullopt when there is none.
  Result<std::optional<KafkaMessage>> LastRecord(const std::string& topic, int32_t partition, int64_t end);

 private:
  struct Impl;
  explicit KafkaInspector(std::unique_ptr<Impl> impl);
  // The committed records of [from, end), stopping after the first when `first_only`.
  Result<std::vector<KafkaMessage>> Read(const TopicPartition& from, int64_t end, bool first_only);
  std::unique_ptr<Impl> impl_;
};

// True for a consumer's report that a subscribed topic does not exist (yet): informational, the
// consumer keeps running and picks the topic up once it is created.
bool IsUnknownTopic(const Status& status);

// True for the broker's refusal of a request on a topic or the cluster for want of permission (ACLs).
bool IsAuthorizationFailure(const Status& status);

// Reads every partition of a topic from the beginning to its current end: how capture loads its
// checkpoints from a compacted topic. With isolation.level=read_committed (the default here) the end
// is the last stable offset, so records of aborted or open transactions are never returned.
//
// Returns the last value per key (a null value, a tombstone, erases the key).
Result<std::map<std::string, std::string>> ReadTopicToEnd(
    const KafkaConfig& config, const std::string& topic,
    std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace m2m
