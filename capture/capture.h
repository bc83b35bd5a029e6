// Capture: MongoDB change streams into Kafka, exactly once.
//
// Protocol (docs/checkpoints.md): capture owns one Kafka transactional.id per capture name. Each
// batch of events is published in one Kafka transaction together with a checkpoint record (the
// resume token after the batch) in a compacted checkpoint topic. After any crash the next run calls
// InitTransactions, which aborts the crashed run's open transaction, reads the last committed
// checkpoint and resumes the change stream right after it: read_committed consumers see every
// change exactly once.
//
// Thread safety: Run() is called from one thread; RequestStop() from any thread (a signal handler
// may set the flag it returns).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "change_stream_reader.h"
#include "namespace_filter.h"
#include "snapshot.h"
#include "m2m/kafka_client.h"
#include "m2m/metrics.h"
#include "m2m/mongo_client.h"
#include "m2m/status.h"

namespace m2m::capture {

// The largest event capture publishes by default, in bytes of its encoded form (docs/events.md):
// room for the largest change event MongoDB sends. A BSON document holds at most 16 MiB, and an
// update event three of them (the post-image or looked-up document, the pre-image, the update
// description; MongoDB 7.0+ splits such an event and capture joins it). Encoded, binary data grows
// by 4/3 (base64), so binary-heavy documents make 3 x 16 MiB x 4/3 = 64 MiB; the rest is room for
// type wrappers and escapes. It stays under Kafka's socket.request.max.bytes (100 MiB), which
// bounds a produce request, and librdkafka's receive.message.max.bytes (100 MB), which bounds a
// fetch response by default.
inline constexpr int64_t kDefaultMaxMessageBytes = int64_t{80} << 20;

// Room for what a Kafka record batch of one record adds to its key and value (the batch header, 61
// bytes, and the record's varints).
inline constexpr int64_t kRecordBatchOverhead = 1024;

// The memory capture holds events in by default (CaptureOptions::max_buffer_bytes).
inline constexpr int64_t kDefaultMaxBufferBytes = int64_t{256} << 20;
inline constexpr int64_t kMinBufferBytes = int64_t{1} << 20;

enum class SnapshotMode {
  kInitial,  // copy the collections once, on the first start (no checkpoint yet), then stream
  kNever,    // only stream, from the first start on
};

struct CaptureOptions {
  // Names this capture: its Kafka transactional.id is "mongo2mysql-capture-<name>" and its checkpoint
  // key "stream/<name>". Two captures of different sources need different names. Default: default
  std::string name = "default";
  MongoOptions mongo;
  StreamOptions stream;
  // Default: kInitial
  SnapshotMode snapshot_mode = SnapshotMode::kInitial;
  SnapshotOptions snapshot;
  // Database and deployment scope: collections to publish ("db.coll" or /regex/ on "db.coll"); empty
  // means all. Default: empty
  std::vector<std::string> include_collections;
  // Collections never published, even when included. Default: empty
  std::vector<std::string> exclude_collections;
  // A warning is logged when capture's lag exceeds this share of the oplog window, before its resume
  // point can fall off the oplog. Default: 0.5
  double lag_warning_share = 0.5;
  // Forget the stored checkpoint: record a new start point and snapshot again (the way out when the
  // checkpoint has fallen off the oplog). Default: false
  bool resnapshot = false;
  // librdkafka properties (the kafka.* keys), bootstrap.servers at least.
  KafkaConfig kafka = {{"bootstrap.servers", "127.0.0.1:9092"}};
  // Events of <db>.<collection> go to topic "<topic_prefix>.<db>.<collection>". Default: m2m
  std::string topic_prefix = "m2m";
  // Partitions of the topics capture creates (existing topics are left as they are). Default: 1
  int topic_partitions = 1;
  // A transaction is committed after this many events... Default: 5000 (a catch-up through a
  // backlog spends a commit per transaction: with 1000, 30,000-38,000 events/s here; with 5000,
  // 44,000-59,000, bench/capture_bench.py --catch-up-only --events 200000)
  int max_batch_events = 5000;
  // ...or after this long, whichever comes first; it is committed earlier when the change stream
  // has nothing more to hand over. A snapshot transaction takes the next chunk while it is younger
  // than this and that chunk is read (docs/checkpoints.md). Default: 200 ms
  std::chrono::milliseconds max_batch_time = std::chrono::milliseconds(200);
  // While no events arrive, the server's postBatchResumeToken still moves; it is checkpointed at most
  // this often, so a restart after a long idle time resumes near the present. Default: 5 s
  std::chrono::milliseconds idle_checkpoint_interval = std::chrono::seconds(5);
  // The largest record (key and encoded event) capture publishes to an event topic; a larger event
  // goes to the dead-letter topic, whole. Capture creates its topics with room for it (and checks
  // existing ones: topic_max_bytes). At most 1,000,000,000 less kRecordBatchOverhead (librdkafka's
  // limit); above 100 MiB the brokers' socket.request.max.bytes must be raised too.
  // Default: kDefaultMaxMessageBytes (80 MiB)
  int64_t max_message_bytes = kDefaultMaxMessageBytes;
  // The bytes of events capture holds in memory at once (docs/checkpoints.md, "Memory"). Half is
  // for snapshot documents read and not yet published (ChunkQueue; while streaming, up to 16 MiB of it
  // for change events read ahead: StreamReadAhead), half for records produced and
  // not yet acknowledged by Kafka (the producer's queue.buffering.max.kbytes, which capture sets;
  // it is never less than the largest record, or that record could never be produced). An event
  // larger than its half still goes, alone. Default: kDefaultMaxBufferBytes (256 MiB)
  int64_t max_buffer_bytes = kDefaultMaxBufferBytes;

  Status Validate() const;
  int64_t snapshot_buffer_bytes() const { return max_buffer_bytes / 2; }
  int64_t producer_buffer_bytes() const { return max_buffer_bytes - snapshot_buffer_bytes(); }
  // The largest dead-letter record: never less than the default limit, whose room holds any
  // event MongoDB sends as base64 BSON (dead_letter.h), so an event too large for a small
  // max_message_bytes is still kept whole.
  int64_t dead_letter_max_bytes() const { return std::max(max_message_bytes, kDefaultMaxMessageBytes); }
  // The max.message.bytes (and least segment.bytes) a topic needs for records of `record_bytes`:
  // a batch holds one such record, or small records up to librdkafka's batch.size (framing
  // included). Kafka's default max.message.bytes, 1048588, holds records of 1047564 bytes.
  int64_t topic_max_bytes(int64_t record_bytes) const;
  std::string checkpoint_topic() const { return topic_prefix + ".__checkpoints"; }
  std::string dead_letter_topic() const { return topic_prefix + ".__dead_letter"; }
  std::string transactional_id() const { return "mongo2mysql-capture-" + name; }
};

// The Kafka topic for a namespace: "<prefix>.<db>.<collection>", with characters Kafka does not allow
// in topic names replaced by '_' and, when anything was replaced or the name is too long, a short
// hash of the original appended so that distinct namespaces never share a topic.
std::string TopicFor(const std::string& prefix, const std::string& db, const std::string& collection);

// Counters for progress output and metrics; read from any thread.
struct CaptureStats {
  std::atomic<int64_t> events{0};
  std::atomic<int64_t> snapshot_documents{0};
  std::atomic<int64_t> dead_letters{0};
  std::atomic<int64_t> transactions{0};
  std::atomic<int64_t> last_cluster_time_s{0};
  std::atomic<int64_t> oplog_window_s{0};  // 0 while unknown (no read access to local.oplog.rs)
  LabelledValues events_by_collection;      // {"db.collection"}, republished events included
  std::atomic<int64_t> errors{0};           // batches abandoned after an error and redone
  std::atomic<bool> stream_idle{false};     // the last read found no event waiting: no lag
  // Start-up is done: MongoDB connected, Kafka transactions initialised, the checkpoint read (systemd's
  // READY=1).
  std::atomic<bool> ready{false};
  // Transactions of change events (not snapshot chunks or idle checkpoints): events in each, and the
  // seconds from its first event to its commit.
  prometheus::Histogram batch_events{kBatchEventsBuckets};
  prometheus::Histogram batch_seconds{kSecondsBuckets};

  // Counts a transaction committed with `events` change events, `took` after its first (none: a
  // snapshot chunk or an idle checkpoint, not counted).
  void RecordBatch(int events, std::chrono::steady_clock::duration took);
};

// Adds capture's metrics, read from `stats` at scrape time, to `registry` (docs/metrics.md).
void RegisterMetrics(const CaptureStats& stats, MetricsRegistry& registry);

class Capture {
 public:
  static Result<std::unique_ptr<Capture>> Make(CaptureOptions options);
  ~Capture();

  // Streams until RequestStop() or a non-retriable error. Returns OK after a clean stop, with the
  // last batch committed.
  Status Run();
  void RequestStop() { stop_.store(true); }
  const CaptureStats& stats() const { return stats_; }

 private:
  explicit Capture(CaptureOptions options);
  struct Loop;

  CaptureOptions options_;
  std::atomic<bool> stop_{false};
  CaptureStats stats_;
};

}  // namespace m2m::capture
