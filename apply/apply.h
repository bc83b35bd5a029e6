// Apply: Kafka change events into MySQL rows, exactly once (docs/apply.md).
//
// Apply is a member of a Kafka consumer group and one host of the apply transaction (applier.h):
// it consumes the partitions the group gives it, starting each at its offset stored in MySQL (checked
// against what Kafka still holds), batches what it consumes by count, bytes and time, and holds
// barriers until the other partitions it owns have nothing before them in cluster-time order
// (barrier.h; docs/apply.md, "Order across topics"): Kafka orders each topic, not the collections
// against each other. Any retriable failure (MySQL or the broker away, a rebalance, another member
// having applied a partition) abandons the batch in flight and starts every owned partition again
// from its stored offset, after a backoff; retry_for bounds how long.
//
// Thread safety: Run() is called from one thread; RequestStop() from any thread (a signal handler may
// set the flag it returns).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "applier.h"
#include "m2m/kafka_client.h"
#include "m2m/metrics.h"
#include "m2m/status.h"

namespace m2m::apply {

// The MySQL side (group, mysql, mapping, mongo, sql) is the Applier's.
struct ApplyOptions : ApplierOptions {
  // librdkafka properties (the kafka.* keys), bootstrap.servers at least. Apply sets group.id (the
  // group), isolation.level=read_committed (capture writes transactionally; uncommitted events must
  // never reach MySQL), enable.auto.commit=false and auto.offset.reset=error (a position Kafka no
  // longer holds is an error naming the gap, never a silent jump; see accept_lost_events) itself.
  KafkaConfig kafka = {{"bootstrap.servers", "127.0.0.1:9092"}};
  // Topics to consume. Default: none (then topic_pattern is required)
  std::vector<std::string> topics;
  // A regular expression (ECMAScript, as librdkafka's "^..." subscriptions) matching topic names to
  // consume, new ones included as they appear, e.g. "m2m\\.shop\\..*". Default: none
  std::string topic_pattern;
  // A batch (one MySQL transaction) ends after this many events... Default: 5000
  int max_batch_events = 5000;
  // ...or when its records (keys and values as Kafka holds them) reach this many bytes; a record
  // larger than this is a batch alone... Default: 64 MiB
  size_t max_batch_bytes = size_t{64} << 20;
  // ...or this long after its first event, whichever comes first; it closes earlier when the
  // consumer has nothing more buffered. Default: 500 ms
  std::chrono::milliseconds max_batch_time{500};
  // Apply every event up to the ends of the assigned partitions, then return (a batch catch-up run).
  // Default: false (run until stopped)
  bool until_caught_up = false;
  // How long apply keeps trying while attempts fail with retriable errors (MySQL or a broker
  // unreachable or restarting, lost connections, deadlocks), counted from the first failure since
  // the last success; 0 tries for ever. Attempts are 0.5 s apart, doubling up to 30 s, and each
  // failure is logged with what apply waits for. Default: 10 min
  std::chrono::seconds retry_for = std::chrono::minutes(10);
  // When a partition's stored offset is no longer in Kafka (retention or DeleteRecords removed events
  // apply had not read, or the topic was created again), continue at the log's first offset and log
  // the lost range, instead of stopping with an error naming it (docs/apply.md, "Events lost from
  // Kafka"). Default: false
  bool accept_lost_events = false;
  // How often progress is logged. Default: 10 s
  std::chrono::milliseconds progress_interval = std::chrono::seconds(10);

  Status Validate() const;
};

// Adds apply's metrics, read from `stats` at scrape time, to `registry` (docs/metrics.md).
void RegisterMetrics(const ApplyStats& stats, MetricsRegistry& registry);

class Apply {
 public:
  static Result<std::unique_ptr<Apply>> Make(ApplyOptions options);
  ~Apply();

  // Applies until RequestStop(), a non-retriable error, retriable errors for longer than retry_for,
  // or (until_caught_up) the end of the partitions. A stop commits the batch in flight first.
  Status Run();
  void RequestStop() { stop_.store(true); }
  const ApplyStats& stats() const { return stats_; }

 private:
  explicit Apply(ApplyOptions options) : options_(std::move(options)) {}
  struct Loop;

  ApplyOptions options_;
  std::atomic<bool> stop_{false};
  ApplyStats stats_;
};

}  // namespace m2m::apply
