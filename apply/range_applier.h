// The apply transaction (applier.h) hosted by a Spark task: the records of one Kafka partition's
// offset range, as Spark's Kafka source gives them to the task, into MySQL (docs/spark.md).
//
// Exactly once comes from the Applier's offsets, not from Spark: records below the partition's
// stored offset are skipped, so a retried task, a batch replayed after a driver crash, or a new
// checkpoint folder applies nothing twice. Within the range, a batch commits every max_batch_events
// records or max_batch_bytes bytes, so a long range is not one huge transaction.
//
// Order across topics (barrier.h): a run stops before the first barrier of its range that `release`
// does not name, and says so (held); the driver lets the barrier that comes first in MongoDB's order
// go in another run (with the snapshot reads right behind it, which commute), once every other
// partition of the batch is at its range's end or holds a later barrier (docs/spark.md, "Order
// across topics").
//
// Retriable failures (MySQL restarting, a lost connection, another owner having applied records)
// are retried with the Backoff for up to retry_for, redoing the batch from the records the Applier
// kept.
//
// Thread safety: one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <optional>
#include <vector>

#include "applier.h"
#include "m2m/backoff.h"

namespace m2m::apply {

struct RangeOptions {
  // The barriers this run may apply; any other stops it. Default: none
  std::set<OrderKey> release;
  // A transaction commits after this many records... Default: 5000
  int max_batch_events = 5000;
  // ...or this many bytes of records. Default: 64 MiB
  size_t max_batch_bytes = size_t{64} << 20;
  // How long retriable failures are retried; 0 for ever. Default: 10 min
  std::chrono::seconds retry_for = std::chrono::minutes(10);
};

// What a run did.
struct RangeOutcome {
  int64_t records = 0;               // records fed up to where it stopped (skipped ones included)
  int64_t skipped = 0;               // of them, applied before (below the stored offset)
  std::optional<OrderKey> held;      // the barrier it stopped before
  int64_t retries = 0;               // retriable failures retried
};

class RangeRun {
 public:
  RangeRun(Applier& applier, RangeOptions options) : applier_(applier), options_(std::move(options)) {}

  // Applies `records` (the partition's next records, in offset order; any partitions), committing as
  // batches fill. Once a barrier holds the run, the rest is ignored.
  Status Feed(std::vector<KafkaMessage> records);
  bool held() const { return outcome_.held.has_value(); }

  // Commits what remains; the run's outcome.
  Result<RangeOutcome> Finish();

 private:
  Status AddOne(KafkaMessage& record);
  // Runs `step`; on a retriable failure waits, redoes the kept batch and runs it again.
  template <typename Step>
  Status Retrying(Step step);

  Applier& applier_;
  RangeOptions options_;
  RangeOutcome outcome_;
  std::map<PartitionId, std::optional<int64_t>> stored_;  // read when the run meets the partition
  Backoff backoff_;
  std::atomic<bool> stop_{false};  // never set: a task is stopped by killing its worker
};

}  // namespace m2m::apply
