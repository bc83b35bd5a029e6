// mongo2mysql status: how far each part of the pipeline has come, read from where the pipeline keeps
// its own state, so it works with capture and apply running or stopped, without talking to them:
//
//   capture   the checkpoint topic <prefix>.__checkpoints: per capture, the last checkpoint (its time,
//             the cluster time of the last event, whether the snapshot is done); per collection, the
//             snapshot's plan and progress (docs/checkpoints.md)
//   Kafka     per collection topic and partition: the end (last stable offset) and the newest record
//   apply     per partition, _m2m_offsets of the group: the next offset to apply, the running count
//             of events applied and the time of the last one; _m2m_quarantine; the mapped tables
//             (their COMMENTs name the collection) (docs/apply.md)
//
// Lag in events of a partition is the distance from the first record not yet applied to the end.
// Kafka's transaction markers between them count too (one per capture transaction), so the figure
// is an upper bound, exact when it is 0: a partition is caught up when no record follows the stored
// offset. Lag in seconds is how long that first record not yet applied has waited (now minus its
// Kafka timestamp). Throughput needs two samples: ReadPipelineStatus reads apply's counts and
// capture's checkpoint at the start and again `interval` later.
//
// Thread safety: ReadPipelineStatus opens its own connections; call it from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "m2m/kafka_client.h"
#include "m2m/mysql_client.h"
#include "m2m/status.h"

namespace m2m::status {

struct StatusOptions {
  // librdkafka properties, bootstrap.servers at least.
  KafkaConfig kafka = {{"bootstrap.servers", "127.0.0.1:9092"}};
  // The captures' --topic-prefix. Default: m2m
  std::string topic_prefix = "m2m";
  // Where apply writes (mysql.database set). Without it only capture and Kafka are reported.
  // Default: none
  std::optional<MysqlOptions> mysql;
  // Apply's consumer group (--group). Default: mongo2mysql-apply
  std::string group = "mongo2mysql-apply";
  // Time between the two samples that throughput is computed from; 0 reports no throughput.
  // Default: 2 s
  std::chrono::milliseconds interval = std::chrono::seconds(2);
  // How long to wait for each server's answer. Default: 15 s
  std::chrono::milliseconds timeout = std::chrono::seconds(15);

  Status Validate() const;
};

// One capture (a stream/<name> checkpoint).
struct CaptureProgress {
  std::string name;
  std::string scope;          // "database:shop", "collection:shop.orders", "deployment"
  bool snapshot_done = false;
  int64_t checkpoint_ms = 0;  // when the last checkpoint was committed
  int64_t last_event_s = 0;   // cluster time of the last event published; 0 unknown
  std::optional<double> events_per_s;  // published, between the two samples
};

// One collection's snapshot (a snapshot/<capture>/<db>.<coll> record).
struct SnapshotProgress {
  std::string capture;
  int64_t documents = 0;  // counted when planned
  int64_t copied = 0;
  int64_t chunks = 0;
  int64_t chunks_done = 0;
  bool complete() const { return chunks_done == chunks; }
};

// One collection: its topic, its tables and how far apply is.
struct CollectionProgress {
  std::string topic;
  std::string collection;           // "db.coll"; empty when the topic name does not say
  std::vector<std::string> tables;  // the mapped tables, root first (empty before apply created them)
  int partitions = 0;
  int64_t end_offset = 0;           // sum of the partitions' ends
  int64_t last_captured_ms = 0;     // Kafka timestamp of the newest record; 0 when empty
  std::optional<SnapshotProgress> snapshot;
  // Apply; all 0 without MySQL options.
  int64_t applied_events = 0;       // running count of the group's applied events
  int64_t last_applied_ms = 0;      // Kafka timestamp of the last event applied; 0 none
  int64_t lag_events = 0;
  double lag_seconds = 0;
  int64_t quarantined = 0;
  std::optional<double> applied_per_s;
};

struct PipelineStatus {
  int64_t at_ms = 0;  // when read
  std::string topic_prefix;
  std::optional<std::string> database;  // apply's MySQL database, when reported
  std::string group;
  std::vector<CaptureProgress> captures;
  std::vector<CollectionProgress> collections;  // by topic

  nlohmann::json ToJson() const;
  // Aligned tables for a terminal.
  std::string ToText() const;
};

// Reads the status; fails, naming the server, when Kafka or MySQL cannot be reached.
Result<PipelineStatus> ReadPipelineStatus(const StatusOptions& options);

}  // namespace m2m::status
