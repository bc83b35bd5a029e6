// Apply: Kafka change events into MySQL rows, exactly once (docs/apply.md).
//
// Protocol. Apply is a member of a Kafka consumer group. For every partition it is given, it keeps the
// next offset to apply in the MySQL table _m2m_offsets (bookkeeping.h), and writes that offset in the
// same MySQL transaction as the rows the events produce. On assignment it reads the stored offsets and
// starts each partition there; Kafka's committed offsets are only written for monitoring. Each
// transaction first locks the group's offset rows and checks they still hold what this process last
// read or wrote, so a member that lost its partitions (a rebalance it did not notice in time) cannot
// write a batch another member has already applied. After any crash, the rows and the offsets in
// MySQL agree, and the next run continues right after the last committed batch.
//
// Per batch: decode, map (the Mapper grows the catalog and returns DDL), coalesce per key (Batch),
// resolve updates that need the full document (from MongoDB when configured, else quarantine), run
// the DDL (it commits implicitly, so before BEGIN; every statement is idempotent against the schema
// read back after a crash), then BEGIN, the row statements, the quarantined events, the offsets,
// COMMIT. A collection-level event (drop, rename) ends the batch and runs alone after it. Such an
// event, and the first event of a collection without tables, is first held until the other owned
// partitions have nothing before it in cluster-time order (barrier.h; docs/apply.md, "Order across
// topics"): Kafka orders each topic, not the collections against each other.
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

#include "m2m/kafka_client.h"
#include "m2m/mapping.h"
#include "m2m/metrics.h"
#include "m2m/mongo_client.h"
#include "m2m/mysql_client.h"
#include "m2m/sql_writer.h"
#include "m2m/status.h"

namespace m2m::apply {

struct ApplyOptions {
  // librdkafka properties (the kafka.* keys), bootstrap.servers at least. Apply sets group.id,
  // isolation.level=read_committed (capture writes transactionally; uncommitted events must never
  // reach MySQL), enable.auto.commit=false and auto.offset.reset=error (a position Kafka no longer
  // holds is an error naming the gap, never a silent jump; see accept_lost_events) itself.
  KafkaConfig kafka = {{"bootstrap.servers", "127.0.0.1:9092"}};
  // Topics to consume. Default: none (then topic_pattern is required)
  std::vector<std::string> topics;
  // A regular expression (ECMAScript, as librdkafka's "^..." subscriptions) matching topic names to
  // consume, new ones included as they appear, e.g. "m2m\\.shop\\..*". Default: none
  std::string topic_pattern;
  // The Kafka consumer group; also the key of this group's rows in _m2m_offsets. Default: mongo2mysql-apply
  std::string group = "mongo2mysql-apply";
  // The MySQL server and database; the database is created when missing.
  MysqlOptions mysql;
  // The document-to-table mapping (docs/mapping.md). Default: automatic for every collection
  MappingConfig mapping;
  // Where updates whose delta cannot be applied column by column fetch their document. Without it such
  // events are quarantined (capture's default --full-document updateLookup makes them rare).
  // Default: none
  std::optional<MongoOptions> mongo;
  // A batch (one MySQL transaction) ends after this many events... Default: 5000
  int max_batch_events = 5000;
  // ...or this long after its first event, whichever comes first. Default: 500 ms
  std::chrono::milliseconds max_batch_time{500};
  // Apply every event up to the ends of the assigned partitions, then return (a batch catch-up run).
  // Default: false (run until stopped)
  bool until_caught_up = false;
  // SQL rendering (statement size, ALGORITHM=INSTANT). Default: SqlOptions defaults
  SqlOptions sql;
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

// Counters for progress output and metrics; read from any thread.
struct ApplyStats {
  std::atomic<int64_t> events{0};       // events consumed and committed (quarantined ones included)
  std::atomic<int64_t> batches{0};      // MySQL transactions committed
  std::atomic<int64_t> quarantined{0};  // events written to _m2m_quarantine
  std::atomic<int64_t> retries{0};      // batches abandoned and redone from the stored offsets
  std::atomic<int64_t> last_event_ms{0};  // Kafka timestamp of the last committed event
  std::atomic<int64_t> ddl_statements{0};  // CREATE, ALTER, RENAME and DROP TABLE statements run
  std::atomic<int64_t> lag_events{0};      // offsets from the positions to the ends of the partitions owned
  // Partitions assigned to this member that it has not started yet: their stored offsets could not be
  // read (MySQL unreachable); lag_events does not cover them, so their lag is unknown.
  std::atomic<int64_t> partitions_waiting{0};
  CounterVec events_by_topic;              // committed events per topic
};

// Adds apply's metrics, read from `stats` at scrape time, to `registry` (docs/operations.md).
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
