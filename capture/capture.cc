#include "capture.h"

#include <bson/bson.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <map>
#include <thread>
#include <tuple>

#include "dead_letter.h"
#include "m2m/backoff.h"
#include "m2m/event_codec.h"
#include "stream_read_ahead.h"

namespace m2m::capture {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// How long a transaction waits for the read-ahead's next event before it counts the stream as dry
// and commits: long enough to take what the read-ahead thread is handing over, far below a commit.
constexpr auto kDryLook = std::chrono::milliseconds(1);
// Change events read ahead of the transaction: a few server batches of ordinary events, enough to
// cover a commit; a larger event is still read, alone.
constexpr int64_t kReadAheadBytes = int64_t{16} << 20;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Fnv1aHex(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  char buf[9];
  snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(h ^ (h >> 32)));
  return buf;
}

std::string OperationType(const bson_t* raw) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, raw, "operationType") && BSON_ITER_HOLDS_UTF8(&it)) return bson_iter_utf8(&it, nullptr);
  return {};
}

std::string ScopeKey(const StreamOptions& s) {
  switch (s.scope) {
    case StreamScope::kCollection: return "collection:" + s.database + "." + s.collection;
    case StreamScope::kDatabase: return "database:" + s.database;
    case StreamScope::kDeployment: return "deployment";
  }
  return "";
}

// What a checkpoint record holds: where the stream continues, and whether the snapshot that must
// precede it is still to be finished.
struct Checkpoint {
  std::optional<BsonDocument> resume_token;
  std::optional<std::pair<uint32_t, uint32_t>> start_at;
  bool snapshot_pending = false;
};

// Why `doc`, whose event EncodeEvent refused with `refused`, has no JSON form: a string or field name
// that is not UTF-8 (MongoDB stores such text without checking), with where it is. Validating only
// after the encoder refused keeps a second pass over every document off the hot path.
std::string NotUtf8(const bson_t* doc, const Status& refused) {
  size_t offset = 0;
  if (bson_validate(doc, static_cast<bson_validate_flags_t>(BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL),
                    &offset)) {
    return refused.message();
  }
  return "a string or field name is not UTF-8 (at byte " + std::to_string(offset) +
         " of the BSON); JSON cannot carry it";
}

// The record of a snapshot read event of `doc`, a document of `ns`, or the document itself and why
// it cannot be one (the publisher sends it to the dead-letter topic). Read events carry the
// snapshot's start point, `start_at`, as their cluster time: they show the collections as of that
// time or later, and the stream continues from it (docs/events.md). Reads only its arguments: the
// snapshot's readers call it, each on its own thread, so that encoding, most of capture's CPU per
// document, runs beside the reading and the publishing.
SnapshotRecord MakeReadRecord(const CaptureOptions& o, const Namespace& ns,
                              const std::optional<std::pair<uint32_t, uint32_t>>& start_at, BsonDocument doc) {
  SnapshotRecord record;
  auto reject = [&](std::string why) {
    record.why = std::move(why);
    record.rejected = std::move(doc);
    return std::move(record);
  };
  auto event = MakeSnapshotRead(ns.db, ns.collection, doc.get());
  if (!event.ok()) return reject(event.status().message());
  auto where = [&] { return "document " + event->document_key.ToRelaxedJson() + " in " + ns.db + "." + ns.collection; };
  if (start_at) std::tie(event->cluster_time_s, event->cluster_time_i) = *start_at;
  EncodeOptions eo;
  eo.server_name = o.topic_prefix;
  eo.processed_at_ms = NowMs();
  auto encoded = EncodeEvent(*event, eo);
  if (!encoded.ok()) return reject("snapshot read: " + NotUtf8(doc.get(), encoded.status()) + " (" + where() + ")");
  record.value = std::move(encoded->value);
  record.key = std::move(encoded->key);
  if (static_cast<int64_t>(record.key.size() + record.value.size()) > o.max_message_bytes) {
    std::string why = "snapshot read of " + std::to_string(record.key.size() + record.value.size()) +
                      " bytes is over capture.max_message_bytes " + std::to_string(o.max_message_bytes) + " (" +
                      where() + ")";
    record.key.clear();
    record.value.clear();
    return reject(std::move(why));
  }
  return record;
}

// A segment must hold the largest record batch; Kafka's own default is 1 GiB.
constexpr int64_t kSegmentBytes = int64_t{1} << 30;

// librdkafka's default batch.size.
constexpr int64_t kDefaultBatchSize = 1000000;

}  // namespace

std::string TopicFor(const std::string& prefix, const std::string& db, const std::string& collection) {
  std::string wanted = prefix + "." + db + "." + collection;
  std::string topic;
  bool changed = false;
  for (char c : wanted) {
    bool legal = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
    topic += legal ? c : '_';
    changed |= !legal;
  }
  constexpr size_t kMaxTopic = 249;
  if (changed || topic.size() > kMaxTopic) topic = topic.substr(0, kMaxTopic - 9) + "_" + Fnv1aHex(wanted);
  return topic;
}

Status CaptureOptions::Validate() const {
  if (name.empty()) return Status::Invalid("capture.name is empty");
  M2M_RETURN_NOT_OK(mongo.Validate());
  M2M_RETURN_NOT_OK(stream.Validate());
  M2M_RETURN_NOT_OK(snapshot.Validate());
  M2M_RETURN_NOT_OK(NamespaceFilter::Make(include_collections, exclude_collections).status());
  if (lag_warning_share <= 0 || lag_warning_share > 1) return Status::Invalid("capture.lag_warning_share must be in (0, 1]");
  if (kafka.find("bootstrap.servers") == kafka.end()) return Status::Invalid("kafka.bootstrap.servers is not set");
  if (kafka.count("transactional.id")) {
    return Status::Invalid("kafka.transactional.id is set by capture from capture.name; remove it");
  }
  if (topic_prefix.empty()) return Status::Invalid("capture.topic_prefix is empty");
  if (topic_partitions <= 0) return Status::Invalid("capture.topic_partitions must be positive");
  if (max_batch_events <= 0) return Status::Invalid("capture.max_batch_events must be positive");
  if (max_batch_time.count() <= 0) return Status::Invalid("capture.max_batch_time must be positive");
  if (max_buffer_bytes < kMinBufferBytes) {
    return Status::Invalid("capture.max_buffer_bytes must be at least " + std::to_string(kMinBufferBytes) + ", got " +
                           std::to_string(max_buffer_bytes));
  }
  if (kafka.count("queue.buffering.max.kbytes")) {
    return Status::Invalid(
        "kafka.queue.buffering.max.kbytes is set by capture from capture.max_buffer_bytes; remove it");
  }
  constexpr int64_t kLibrdkafkaMax = 1000000000;  // the largest message.max.bytes librdkafka takes
  if (max_message_bytes < 1024 || max_message_bytes > kLibrdkafkaMax - kRecordBatchOverhead) {
    return Status::Invalid("capture.max_message_bytes must be between 1024 and " +
                           std::to_string(kLibrdkafkaMax - kRecordBatchOverhead) + ", got " +
                           std::to_string(max_message_bytes));
  }
  return Status::OK();
}

int64_t CaptureOptions::topic_max_bytes(int64_t record_bytes) const {
  int64_t batch = kDefaultBatchSize;
  auto set = kafka.find("batch.size");
  if (set != kafka.end()) batch = std::strtoll(set->second.c_str(), nullptr, 10);
  return std::max(record_bytes + kRecordBatchOverhead, batch);
}

// One run of the capture loop; lives for the duration of Capture::Run.
struct Capture::Loop {
  const CaptureOptions& o;
  CaptureStats& stats;
  std::atomic<bool>& stop;

  std::unique_ptr<MongoClient> mongo;
  std::unique_ptr<KafkaAdmin> admin;
  std::unique_ptr<KafkaProducer> producer;
  std::unique_ptr<MongoClient> stream_mongo;  // the read-ahead thread's own connection
  std::unique_ptr<StreamReadAhead> reader;
  SplitEventAssembler assembler;
  NamespaceFilter filter;
  std::map<std::string, int> topic_partitions;  // topics known to exist, with their partition count
  std::string checkpoint_key;

  Checkpoint committed;           // the last checkpoint known to be committed
  std::map<std::string, std::string> records;  // the checkpoint topic: as read at start, then as committed
  bool in_transaction = false;
  int batch_events = 0;
  Clock::time_point batch_started;
  Clock::time_point last_checkpoint_at = Clock::now();
  std::optional<BsonDocument> reopen_after;  // set by an invalidate event

  Status Setup() {
    M2M_ASSIGN_OR_RETURN(filter, NamespaceFilter::Make(o.include_collections, o.exclude_collections));
    M2M_ASSIGN_OR_RETURN(mongo, MongoClient::Connect(o.mongo));
    M2M_ASSIGN_OR_RETURN(stream_mongo, MongoClient::Connect(o.mongo));
    M2M_ASSIGN_OR_RETURN(admin, KafkaAdmin::Make(o.kafka));
    KafkaConfig pc = o.kafka;
    pc["transactional.id"] = o.transactional_id();
    pc.emplace("linger.ms", "5");
    // The dead-letter topic takes the largest records; librdkafka refuses to send anything larger.
    int64_t largest = o.topic_max_bytes(o.dead_letter_max_bytes());
    auto given = pc.find("message.max.bytes");
    if (given != pc.end()) largest = std::max<int64_t>(largest, std::strtoll(given->second.c_str(), nullptr, 10));
    pc["message.max.bytes"] = std::to_string(largest);
    // The records produced and not yet acknowledged are the producer's share of max_buffer_bytes;
    // its queue must still take the largest record, or producing it would wait for ever.
    pc["queue.buffering.max.kbytes"] = std::to_string((std::max(o.producer_buffer_bytes(), largest) + 1023) / 1024);
    M2M_ASSIGN_OR_RETURN(producer, KafkaProducer::Make(pc));
    // Fences any earlier run with our transactional.id and aborts what it left open, before the
    // checkpoint is read, so the read sees a settled topic.
    M2M_RETURN_NOT_OK(producer->InitTransactions().WithContext("starting capture " + o.name));
    M2M_RETURN_NOT_OK(admin->CreateTopic(o.checkpoint_topic(), 1, {{"cleanup.policy", "compact"}}));
    M2M_RETURN_NOT_OK(PrepareTopic(o.dead_letter_topic(), 1, o.dead_letter_max_bytes()));
    checkpoint_key = "stream/" + o.name;
    return LoadCheckpoint();
  }

  Status LoadCheckpoint() {
    M2M_ASSIGN_OR_RETURN(records, ReadTopicToEnd(o.kafka, o.checkpoint_topic()));
    auto found = records.find(checkpoint_key);
    if (found == records.end() || o.resnapshot) {
      M2M_ASSIGN_OR_RETURN(auto start, ServerClusterTime(*mongo));
      committed = Checkpoint{std::nullopt, start, o.snapshot_mode == SnapshotMode::kInitial};
      spdlog::info("capture {}: {}; starting at cluster time {}.{}{}", o.name,
                   o.resnapshot ? "re-snapshot requested" : "no checkpoint", start.first, start.second,
                   committed.snapshot_pending ? ", after a snapshot" : "");
      if (o.resnapshot) DropSnapshotRecords();
      // Record the start point before reading anything, so a crash before the first batch resumes here
      // and the snapshot's copy is followed by every change made since.
      M2M_RETURN_NOT_OK(BeginIfNeeded());
      M2M_RETURN_NOT_OK(CommitBatch(committed));
      spdlog::info("capture {}: start point committed", o.name);
      return Status::OK();
    }
    json j = json::parse(found->second, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status::Invalid("checkpoint " + checkpoint_key + " in topic " + o.checkpoint_topic() + " is not JSON");
    }
    std::string scope = j.value("scope", "");
    if (scope != ScopeKey(o.stream)) {
      return Status::Invalid("capture '" + o.name + "' was checkpointed for " + scope + " but is now configured for " +
                             ScopeKey(o.stream) + "; use a different capture name for a different source");
    }
    if (j.contains("resume_token") && j["resume_token"].is_string()) {
      M2M_ASSIGN_OR_RETURN(BsonDocument token, BsonDocument::FromJson(j["resume_token"].get<std::string>()));
      committed.resume_token = std::move(token);
    } else if (j.contains("start_at") && j["start_at"].is_object()) {
      committed.start_at = std::make_pair(j["start_at"].value("t", 0u), j["start_at"].value("i", 0u));
    } else {
      return Status::Invalid("checkpoint " + checkpoint_key + " holds neither resume_token nor start_at");
    }
    committed.snapshot_pending = j.value("snapshot", "") == "pending";
    spdlog::info("capture {}: resuming after checkpoint {}", o.name, found->second);
    return Status::OK();
  }

  Status OpenReader(const Checkpoint& from) {
    reader.reset();
    assembler.Reset();
    ResumePoint point;
    if (from.resume_token) point.resume_after = *from.resume_token;
    else point.start_at_operation_time = from.start_at;
    // Read-ahead takes its bytes from the snapshot's half of max_buffer_bytes, idle while streaming.
    M2M_ASSIGN_OR_RETURN(reader, StreamReadAhead::Open(*stream_mongo, o.stream, point,
                                                       std::min(o.snapshot_buffer_bytes(), kReadAheadBytes)));
    return Status::OK();
  }

  Status BeginIfNeeded() {
    if (in_transaction) return Status::OK();
    M2M_RETURN_NOT_OK(producer->BeginTransaction());
    in_transaction = true;
    batch_events = 0;
    batch_started = Clock::now();
    return Status::OK();
  }

  // Creates `topic` with room for records of `record_bytes`, or checks that the existing topic has it:
  // a record the broker refuses would fail every transaction that holds it, so capture would redo
  // the batch forever. Capture does not change a topic it did not create (its settings are the
  // operator's); the error gives the command that does.
  Status PrepareTopic(const std::string& topic, int partitions, int64_t record_bytes) {
    int64_t needed = o.topic_max_bytes(record_bytes);
    int64_t segment = std::max(needed, kSegmentBytes);
    M2M_RETURN_NOT_OK(admin->CreateTopic(
        topic, partitions, {{"max.message.bytes", std::to_string(needed)}, {"segment.bytes", std::to_string(segment)}}));
    auto config = admin->TopicConfig(topic);
    if (!config.ok()) {
      // Without DescribeConfigs permission the check is skipped; the broker still enforces the limit.
      if (!IsAuthorizationFailure(config.status())) return config.status();
      spdlog::warn("capture {}: cannot check the size settings of topic {}: {}", o.name, topic,
                   config.status().message());
      return Status::OK();
    }
    std::string too_small, raise;
    int64_t holds = needed;  // the largest batch the topic takes as it is
    for (const char* key : {"max.message.bytes", "segment.bytes"}) {
      auto found = config->find(key);
      if (found == config->end()) continue;
      int64_t value = std::strtoll(found->second.c_str(), nullptr, 10);
      if (value >= needed) continue;
      holds = std::min(holds, value);
      too_small += std::string(too_small.empty() ? "" : " and ") + key + "=" + found->second;
      raise += std::string(raise.empty() ? "" : ",") + key + "=" +
               std::to_string(std::string(key) == "segment.bytes" ? segment : needed);
    }
    if (too_small.empty()) return Status::OK();
    std::string bootstrap = o.kafka.count("bootstrap.servers") ? o.kafka.at("bootstrap.servers") : "<broker>";
    bool dead_letter = topic == o.dead_letter_topic();
    // A smaller limit is a way out for an event topic whose size fits batches of small events.
    int64_t smaller = holds - kRecordBatchOverhead;
    bool can_shrink = !dead_letter && smaller >= 1024 && o.topic_max_bytes(smaller) <= holds;
    return Status::Invalid(
        "topic " + topic + " has " + too_small + ", less than the " + std::to_string(needed) +
        " bytes its largest record batch needs (" +
        (dead_letter ? "the dead-letter topic keeps whole events" : "--max-message-bytes " + std::to_string(o.max_message_bytes)) +
        ", plus framing). The topic existed before capture, which leaves its settings alone; raise them with\n"
        "  kafka-configs.sh --bootstrap-server " + bootstrap + " --alter --entity-type topics --entity-name " + topic +
        " --add-config " + raise + "\n" +
        (can_shrink ? "or run capture with --max-message-bytes " + std::to_string(smaller) +
                          " or less (larger events then go whole to " + o.dead_letter_topic() + "). "
                    : "") +
        "docs/checkpoints.md, \"Large documents\", has a loop for every topic of a prefix.");
  }

  Result<int> EnsureTopic(const std::string& topic) {
    auto known = topic_partitions.find(topic);
    if (known != topic_partitions.end()) return known->second;
    M2M_RETURN_NOT_OK(PrepareTopic(topic, o.topic_partitions, o.max_message_bytes));
    M2M_ASSIGN_OR_RETURN(int partitions, admin->PartitionCount(topic));
    topic_partitions[topic] = partitions;
    return partitions;
  }

  // Publishes the whole event to the dead-letter topic (dead_letter.h), in the open transaction.
  Status DeadLetter(const bson_t* raw, const std::string& reason, const std::string& intended_topic) {
    M2M_ASSIGN_OR_RETURN(std::string record,
                         DeadLetterRecord(raw, {reason, intended_topic, o.name, NowMs()},
                                          static_cast<size_t>(o.dead_letter_max_bytes())));
    spdlog::warn("capture {}: event sent to {}: {}", o.name, o.dead_letter_topic(), reason);
    stats.dead_letters++;
    return producer->Produce(o.dead_letter_topic(), std::nullopt, record);
  }

  // Converts and publishes one complete raw event inside the open transaction.
  Status Publish(const bson_t* raw) {
    std::string type = OperationType(raw);
    if (!IsSupportedOperationType(type)) {
      // DDL-like events (create, createIndexes, ...) carry no row changes; the stream moves past them.
      spdlog::debug("capture {}: skipping {} event", o.name, type);
      return Status::OK();
    }
    Namespace fallback{o.stream.database, o.stream.collection};
    bool collection_scope = o.stream.scope == StreamScope::kCollection;
    auto converted = FromChangeStreamDocument(raw, collection_scope ? &fallback : nullptr);
    if (!converted.ok()) return DeadLetter(raw, converted.status().message(), "");
    ChangeEvent& event = *converted;
    // Only a lookup that found nothing proves the document gone; a missing post-image does not.
    event.document_gone = o.stream.full_document == FullDocumentMode::kUpdateLookup && FullDocumentIsNull(raw);
    stats.last_cluster_time_s = event.cluster_time_s;
    if (event.kind == EventKind::kInvalidate) {
      // The watched collection or database is gone (drop/rename, already published). startAfter the
      // invalidate token continues with whatever takes its place.
      reopen_after = BsonDocument::FromJson(event.resume_token).value();
      return Status::OK();
    }
    if (!event.collection.empty() && !filter.Accepts(event.db, event.collection)) return Status::OK();
    if (event.kind == EventKind::kDropDatabase) {
      // MongoDB sends a drop event for each collection first; those carry the change to the tables.
      spdlog::info("capture {}: database {} dropped", o.name, event.db);
      return Status::OK();
    }
    std::string topic = TopicFor(o.topic_prefix, event.db, event.collection);
    std::string where = "document " + event.document_key.ToRelaxedJson() + " in " + event.db + "." + event.collection;
    if (event.document_key.empty()) {
      // A drop or rename goes to every partition (below); apply waits for all the copies.
      M2M_ASSIGN_OR_RETURN(event.copies, EnsureTopic(topic));
    }
    EncodeOptions eo;
    eo.server_name = o.topic_prefix;
    eo.processed_at_ms = NowMs();
    auto encoded = EncodeEvent(event, eo);
    if (!encoded.ok()) return DeadLetter(raw, NotUtf8(raw, encoded.status()) + " (" + where + ")", topic);
    std::string value = std::move(encoded->value);
    std::string key = std::move(encoded->key);
    if (static_cast<int64_t>(key.size() + value.size()) > o.max_message_bytes) {
      return DeadLetter(raw,
                        "encoded event is " + std::to_string(key.size() + value.size()) +
                            " bytes, over capture.max_message_bytes " + std::to_string(o.max_message_bytes) + " (" +
                            where + ")",
                        topic);
    }
    M2M_ASSIGN_OR_RETURN(int partitions, EnsureTopic(topic));
    if (event.document_key.empty()) {
      // A drop or rename concerns every document, wherever its partition: each partition gets a copy,
      // in order with the events of the documents it holds (docs/events.md).
      for (int32_t p = 0; p < partitions; ++p) M2M_RETURN_NOT_OK(producer->ProduceTo(topic, p, key, value));
    } else {
      M2M_RETURN_NOT_OK(producer->Produce(topic, key, value));
    }
    stats.events++;
    stats.events_by_collection.Add({event.db + "." + event.collection});
    return Status::OK();
  }

  std::string CheckpointValue(const Checkpoint& c) const {
    json j = {{"v", 1}, {"capture", o.name}, {"scope", ScopeKey(o.stream)}, {"committed_at_ms", NowMs()},
              {"events", stats.events.load()}};
    if (c.resume_token) j["resume_token"] = c.resume_token->ToCanonicalJson();
    if (c.start_at) j["start_at"] = {{"t", c.start_at->first}, {"i", c.start_at->second}};
    j["snapshot"] = c.snapshot_pending ? "pending" : "done";
    if (stats.last_cluster_time_s > 0) j["last_event_s"] = stats.last_cluster_time_s.load();  // for status
    return j.dump();
  }

  // Adds the checkpoint (and any other progress records) to the open transaction and commits all.
  // A progress value of nullopt is a tombstone: the record is deleted.
  Status CommitBatch(const Checkpoint& next, const std::map<std::string, std::optional<std::string>>& progress = {}) {
    for (const auto& [key, value] : progress) M2M_RETURN_NOT_OK(producer->Produce(o.checkpoint_topic(), key, value));
    M2M_RETURN_NOT_OK(producer->Produce(o.checkpoint_topic(), checkpoint_key, CheckpointValue(next)));
    M2M_RETURN_NOT_OK(producer->CommitTransaction());
    stats.RecordBatch(batch_events, Clock::now() - batch_started);
    in_transaction = false;
    batch_events = 0;
    committed = next;
    // What is committed is what a retry within this run starts from, as a restart would.
    for (const auto& [key, value] : progress) {
      if (value) records[key] = *value;
      else records.erase(key);
    }
    last_checkpoint_at = Clock::now();
    stats.transactions++;
    return Status::OK();
  }

  // Gives up the open transaction after a retriable error.
  Status AbortOpenTransaction(const Status& cause) {
    stats.errors++;
    if (!in_transaction) return Status::OK();
    M2M_RETURN_NOT_OK(producer->AbortTransaction().WithContext("after " + cause.ToString()));
    in_transaction = false;
    batch_events = 0;
    return Status::OK();
  }

  // Gives up the open transaction; the stream is reopened from the last committed checkpoint, so
  // nothing of the aborted batch is lost or published twice. While MongoDB cannot be reached, the
  // reopening is retried after `pause`, which the caller keeps while batches fail one after another.
  Status AbortAndRewind(const Status& cause, Backoff& pause) {
    spdlog::warn("capture {}: {}; rewinding to the last checkpoint", o.name, cause.ToString());
    M2M_RETURN_NOT_OK(AbortOpenTransaction(cause));
    while (true) {
      Status st = OpenReader(committed);
      if (st.ok() || !st.retriable() || stop.load()) return st;
      spdlog::warn("capture {}: {}; trying again in {} ms", o.name, st.ToString(), pause.next().count());
      pause.Wait(stop);
    }
  }

  bool TokenMoved() const {
    auto token = reader->resume_token();
    return token && (!committed.resume_token || !(*token == *committed.resume_token));
  }

  // One transaction's worth of events; returns when it was committed or nothing was to be done.
  // A transaction closes as soon as the read-ahead has nothing more (one short look), so an event
  // that arrives alone is published at once; under a steady flow the limits close it, as linger.ms
  // does for Kafka's producer, and each commit carries what arrived during the last.
  Status RunBatch() {
    auto entered = Clock::now();
    while (!stop.load()) {
      bool batch_full = in_transaction && (batch_events >= o.max_batch_events ||
                                         Clock::now() - batch_started >= o.max_batch_time);
      if (batch_full && !assembler.pending()) break;
      bool committing = in_transaction && !assembler.pending();
      M2M_ASSIGN_OR_RETURN(auto raw, reader->Next(committing ? kDryLook : o.stream.max_await));
      stats.stream_idle = !raw;
      if (!raw) {
        if (committing) break;
        if (!in_transaction && TokenMoved() && Clock::now() - last_checkpoint_at >= o.idle_checkpoint_interval) break;
        // An idle stream hands back to the caller now and then, so the lag and the oplog window are
        // still reported while nothing happens (that is when a stopped writer's lag grows).
        if (!in_transaction && !assembler.pending() && Clock::now() - entered >= std::chrono::seconds(1)) {
          return Status::OK();
        }
        continue;
      }
      M2M_ASSIGN_OR_RETURN(auto merged, assembler.Add(raw->get()));
      if (!merged) continue;
      M2M_RETURN_NOT_OK(BeginIfNeeded());
      M2M_RETURN_NOT_OK(Publish(merged->get()));
      batch_events++;
      if (reopen_after) break;
    }
    if (assembler.pending()) return Status::OK();  // stopping mid-event: the checkpoint stays before it
    if (!in_transaction && !TokenMoved()) return Status::OK();
    Checkpoint next = committed;
    if (auto token = reader->resume_token()) {
      next.resume_token = std::move(token);
      next.start_at.reset();
    }
    M2M_RETURN_NOT_OK(BeginIfNeeded());
    M2M_RETURN_NOT_OK(CommitBatch(next));
    if (reopen_after) {
      committed.resume_token = std::move(*reopen_after);
      reopen_after.reset();
      return OpenReader(committed);
    }
    return Status::OK();
  }

  std::string SnapshotKey(const Namespace& ns) const {
    return "snapshot/" + o.name + "/" + ns.db + "." + ns.collection;
  }
  // Page `page` of the chunks of a collection's snapshot plan (CollectionSnapshot::PlanPages).
  std::string PlanPageKey(const Namespace& ns, size_t page) const {
    return "snapshot-plan/" + o.name + "/" + ns.db + "." + ns.collection + "/" + std::to_string(page);
  }
  // Tombstones for the plan pages of `ns` held in the checkpoint topic.
  std::map<std::string, std::optional<std::string>> PlanPageTombstones(const Namespace& ns) const {
    std::map<std::string, std::optional<std::string>> out;
    for (size_t p = 0; records.count(PlanPageKey(ns, p)); ++p) out[PlanPageKey(ns, p)] = std::nullopt;
    return out;
  }

  // A re-snapshot starts every collection over; tombstones erase the old plans.
  void DropSnapshotRecords() {
    std::string progress = "snapshot/" + o.name + "/", pages = "snapshot-plan/" + o.name + "/";
    for (auto it = records.begin(); it != records.end();) {
      if (it->first.rfind(progress, 0) == 0 || it->first.rfind(pages, 0) == 0) {
        dropped_snapshot_keys.push_back(it->first);
        it = records.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::string> dropped_snapshot_keys;

  // Copies every collection of the scope, chunk by chunk, then marks the snapshot done; the stream
  // then starts from the point recorded before the copy.
  Status RunSnapshot() {
    if (!dropped_snapshot_keys.empty()) {
      M2M_RETURN_NOT_OK(BeginIfNeeded());
      for (const auto& key : dropped_snapshot_keys) M2M_RETURN_NOT_OK(producer->Produce(o.checkpoint_topic(), key, std::nullopt));
      M2M_RETURN_NOT_OK(CommitBatch(committed));
      dropped_snapshot_keys.clear();
    }
    M2M_ASSIGN_OR_RETURN(auto collections, ListCollections(*mongo, o.stream));
    for (const Namespace& ns : collections) {
      if (stop.load()) return Status::OK();
      if (!filter.Accepts(ns.db, ns.collection)) continue;
      CollectionSnapshot plan;
      auto found = records.find(SnapshotKey(ns));
      if (found != records.end()) {
        auto page = [&](size_t p) -> std::optional<std::string> {
          auto it = records.find(PlanPageKey(ns, p));
          if (it == records.end()) return std::nullopt;
          return it->second;
        };
        M2M_ASSIGN_OR_RETURN(plan, CollectionSnapshot::FromJson(found->second, page));
      } else {
        M2M_ASSIGN_OR_RETURN(plan, PlanSnapshot(*mongo, ns, o.snapshot.chunk_size));
        spdlog::info("capture {}: snapshot of {}.{}: {} documents in {} chunks", o.name, ns.db, ns.collection,
                     plan.documents, plan.chunks.size());
      }
      if (!plan.complete() && !records.count(PlanPageKey(ns, 0))) {
        // The plan, written once, before its first chunk (or in place of a version 1 record's).
        std::map<std::string, std::optional<std::string>> write;
        std::vector<std::string> pages = plan.PlanPages();
        for (size_t p = 0; p < pages.size(); ++p) write[PlanPageKey(ns, p)] = std::move(pages[p]);
        write[SnapshotKey(ns)] = plan.ProgressJson();
        M2M_RETURN_NOT_OK(BeginIfNeeded());
        M2M_RETURN_NOT_OK(CommitBatch(committed, write));
      }
      M2M_RETURN_NOT_OK(CopyCollection(plan));
    }
    if (stop.load()) return Status::OK();
    Checkpoint next = committed;
    next.snapshot_pending = false;
    M2M_RETURN_NOT_OK(BeginIfNeeded());
    M2M_RETURN_NOT_OK(CommitBatch(next));
    spdlog::info("capture {}: snapshot complete ({} documents); streaming from the recorded start point", o.name,
                 stats.snapshot_documents.load());
    return Status::OK();
  }

  // Reads the unfinished chunks of `plan` with parallel workers and publishes each in a transaction
  // of its own, in plan order, together with the plan's updated progress.
  //
  // Threads: this (the publishing) thread owns `plan` and updates its progress after each commit.
  // It only produces the records and commits. The workers read and encode (MakeReadRecord); they
  // never touch `plan` or the Loop: they read chunk bounds from `chunks`, `ns` and `start_at`,
  // copies made before any worker starts, and `o`, immutable while workers run and joined by
  // `finish` before they go out of scope. They hand records over through `queue` (ChunkQueue),
  // which bounds what is held in bytes and keeps them within twice the parallelism of the chunk
  // being published, so they go on with the next chunks while a transaction commits.
  Status CopyCollection(CollectionSnapshot& plan) {
    std::vector<size_t> todo;
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      if (!plan.done[i]) todo.push_back(i);
    }
    std::string key = SnapshotKey(plan.ns);
    if (todo.empty()) {
      if (!records.count(key)) {  // an empty collection: record that it is done
        M2M_RETURN_NOT_OK(BeginIfNeeded());
        M2M_RETURN_NOT_OK(CommitBatch(committed, {{key, plan.ProgressJson()}}));
      }
      return Status::OK();
    }
    const Namespace ns = plan.ns;
    const std::vector<SnapshotChunk> chunks = plan.chunks;
    const auto start_at = committed.start_at;
    ChunkQueue queue(todo.size(), 2 * static_cast<size_t>(o.snapshot.parallelism), o.snapshot_buffer_bytes());
    auto worker = [&] {
      auto client = MongoClient::Connect(o.mongo);
      while (std::optional<size_t> task = queue.Take()) {
        auto each = [&](BsonDocument doc) { return queue.Put(*task, MakeReadRecord(o, ns, start_at, std::move(doc))); };
        Status st = client.ok() ? ReadChunk(**client, ns, chunks[todo[*task]], each) : client.status();
        queue.Finish(*task, std::move(st));
      }
    };
    std::vector<std::thread> workers;
    for (int i = 0; i < o.snapshot.parallelism; ++i) workers.emplace_back(worker);
    auto finish = [&](Status st) {
      queue.Abandon();
      for (auto& t : workers) t.join();
      return st;
    };

    std::string topic = TopicFor(o.topic_prefix, plan.ns.db, plan.ns.collection);
    auto started = Clock::now();
    auto last_report = started;
    int64_t copied_at_start = plan.copied;
    // The chunks published in the open transaction, and their documents.
    std::vector<size_t> in_transaction_chunks;
    int64_t documents = 0;
    for (size_t published = 0; published < todo.size(); ++published) {
      while (true) {
        // Waits in short steps: a stop request (a signal handler's flag) wakes nothing.
        if (stop.load()) return finish(Status::OK());
        ChunkQueue::Item item = queue.Next(std::chrono::milliseconds(200));
        if (item.kind == ChunkQueue::Item::kNothingYet) continue;
        if (item.kind == ChunkQueue::Item::kEnd) {
          if (!item.status.ok()) return finish(item.status);
          break;
        }
        Status st = PublishSnapshotRecord(topic, *item.record);
        if (!st.ok()) return finish(st);
        ++documents;
      }
      // Its records are with the producer (in the producer's half of the memory bound): the readers
      // may go on with the next chunks.
      queue.Published();
      in_transaction_chunks.push_back(todo[published]);
      // The next chunk joins this transaction while it is young and the readers have it coming;
      // when they do not (reading is slower than publishing), committing now costs nothing, and
      // when they do, one commit serves several chunks (docs/checkpoints.md).
      bool last = published + 1 == todo.size();
      if (!last && Clock::now() - batch_started < o.max_batch_time && queue.Ready()) continue;
      Status st = CommitChunks(plan, in_transaction_chunks, documents, key);
      if (!st.ok()) return finish(st);
      in_transaction_chunks.clear();
      documents = 0;
      if (Clock::now() - last_report >= std::chrono::seconds(5) || last) {
        double secs = std::chrono::duration<double>(Clock::now() - started).count();
        double rate = (plan.copied - copied_at_start) / std::max(secs, 0.001);
        int64_t left = std::max<int64_t>(plan.documents - plan.copied, 0);
        spdlog::info("capture {}: snapshot {}.{}: {}/{} documents ({:.0f}%), {:.0f} docs/s, ETA {:.0f} s", o.name,
                     plan.ns.db, plan.ns.collection, plan.copied, plan.documents,
                     plan.documents ? 100.0 * plan.copied / plan.documents : 100.0, rate, rate > 0 ? left / rate : 0.0);
        last_report = Clock::now();
      }
    }
    return finish(Status::OK());
  }

  // Publishes one record of a chunk (MakeReadRecord), in the chunk's transaction (opened by the first).
  Status PublishSnapshotRecord(const std::string& topic, const SnapshotRecord& record) {
    M2M_RETURN_NOT_OK(BeginIfNeeded());
    M2M_RETURN_NOT_OK(EnsureTopic(topic).status());
    if (record.rejected) return DeadLetter(record.rejected->get(), record.why, topic);
    return producer->Produce(topic, record.key, record.value);
  }

  // Commits the transaction of chunks `indices` of `plan` (their `documents` were published in it)
  // together with the plan's progress.
  Status CommitChunks(CollectionSnapshot& plan, const std::vector<size_t>& indices, int64_t documents,
                      const std::string& key) {
    M2M_RETURN_NOT_OK(BeginIfNeeded());  // empty chunks (their documents deleted since the plan)
    // `plan` holds what is committed: the chunks count as done only once their transaction is.
    for (size_t i : indices) plan.done[i] = true;
    plan.copied += documents;
    auto progress = plan.complete() ? PlanPageTombstones(plan.ns) : std::map<std::string, std::optional<std::string>>{};
    progress[key] = plan.ProgressJson();
    Status st = CommitBatch(committed, progress);
    if (!st.ok()) {
      for (size_t i : indices) plan.done[i] = false;
      plan.copied -= documents;
      return st;
    }
    stats.snapshot_documents += documents;
    return Status::OK();
  }

  // Events, rate and lag; the oplog window (refreshed each minute) and a warning when the lag eats
  // into it, while there is still time to act before the resume point falls off the oplog.
  void ReportProgress(double seconds, int64_t previous_events) {
    if (Clock::now() - window_read_at >= std::chrono::minutes(1)) {
      window_read_at = Clock::now();
      auto window = OplogWindowSeconds(*mongo);
      stats.oplog_window_s = window.ok() ? *window : 0;
      if (!window.ok()) spdlog::debug("capture {}: oplog window unknown: {}", o.name, window.status().ToString());
    }
    int64_t events = stats.events.load();
    // A stream with no event waiting is caught up, however old its last event: no lag (as in metrics).
    int64_t lag = stats.stream_idle || !stats.last_cluster_time_s ? 0 : NowMs() / 1000 - stats.last_cluster_time_s.load();
    int64_t window = stats.oplog_window_s.load();
    spdlog::info("capture {}: {} events ({:.0f}/s), {} dead-lettered, lag {} s, oplog window {}", o.name, events,
                 (events - previous_events) / seconds, stats.dead_letters.load(), lag,
                 window > 0 ? std::to_string(window) + " s" : std::string("unknown"));
    if (window > 0 && lag > o.lag_warning_share * static_cast<double>(window)) {
      spdlog::warn("capture {}: lag {} s is {:.0f}% of the oplog window ({} s); if it reaches the window, the "
                   "resume point leaves the oplog and capture must re-snapshot",
                   o.name, lag, 100.0 * lag / window, window);
    }
  }
  Clock::time_point window_read_at = Clock::now() - std::chrono::minutes(2);

  // The collections whose changes a lost stream would have carried, for the message that names them.
  std::string CapturedCollections() {
    auto listed = ListCollections(*mongo, o.stream);
    if (!listed.ok()) return ScopeKey(o.stream);
    constexpr size_t kNamed = 20;
    std::string names;
    size_t count = 0;
    for (const Namespace& ns : *listed) {
      if (!filter.Accepts(ns.db, ns.collection)) continue;
      if (count++ < kNamed) names += (names.empty() ? "" : ", ") + ns.db + "." + ns.collection;
    }
    if (count == 0) return ScopeKey(o.stream);
    if (count > kNamed) names += " and " + std::to_string(count - kNamed) + " more";
    return names;
  }

  // History lost is no retry case: what happened between the checkpoint and the oplog's oldest entry
  // can only be recovered by copying the collections again, which the user must ask for.
  Status HistoryLost(const Status& st) {
    return Status(StatusCode::kHistoryLost,
                  "capture '" + o.name + "' cannot continue " + ScopeKey(o.stream) + ": " + st.message() +
                      ". Changes to " + CapturedCollections() +
                      " made after the last checkpoint are gone from the oplog (capture was stopped, or fell "
                      "behind, for longer than the oplog window). Nothing past the checkpoint was published. "
                      "To go on, run capture again with --resnapshot: it records a new start point and copies "
                      "these collections again. Documents deleted in the lost interval are in no event: clear "
                      "the targets of these collections before applying the copy (docs/checkpoints.md).",
                  false, st.native_code());
  }

  Status Stream() {
    M2M_RETURN_NOT_OK(OpenReader(committed));
    spdlog::info("capture {}: streaming", o.name);
    auto last_report = Clock::now();
    int64_t reported_events = 0;
    Backoff pause;
    bool failing = false;  // the last batch failed too: pause before going again
    while (!stop.load()) {
      Status st = RunBatch();
      if (st.ok() && failing) pause.Reset();
      if (!st.ok()) {
        if (!st.retriable()) return st;
        if (failing) pause.Wait(stop);
        M2M_RETURN_NOT_OK(AbortAndRewind(st, pause));
      }
      failing = !st.ok();
      if (Clock::now() - last_report >= std::chrono::seconds(10)) {
        ReportProgress(std::chrono::duration<double>(Clock::now() - last_report).count(), reported_events);
        last_report = Clock::now();
        reported_events = stats.events.load();
      }
    }
    return Status::OK();
  }

  // A retriable error (MongoDB unreachable, its primary stepping down) abandons the chunk in flight;
  // the copy goes on at the first unfinished chunk, as after a restart, so nothing is copied twice.
  Status SnapshotWithRetries() {
    Backoff pause;
    while (true) {
      Status st = RunSnapshot();
      if (st.ok() || !st.retriable() || stop.load()) return st;
      spdlog::warn("capture {}: snapshot: {}; going on at the first unfinished chunk in {} ms", o.name, st.ToString(),
                   pause.next().count());
      M2M_RETURN_NOT_OK(AbortOpenTransaction(st));
      pause.Wait(stop);
    }
  }

  Status Run() {
    M2M_RETURN_NOT_OK(Setup());
    stats.ready = true;
    Status st = committed.snapshot_pending ? SnapshotWithRetries() : Status::OK();
    if (st.ok() && !stop.load()) st = Stream();
    if (in_transaction) (void)producer->AbortTransaction();
    return st.code() == StatusCode::kHistoryLost ? HistoryLost(st) : st;
  }
};

Capture::Capture(CaptureOptions options) : options_(std::move(options)) {}
Capture::~Capture() = default;

Result<std::unique_ptr<Capture>> Capture::Make(CaptureOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  return std::unique_ptr<Capture>(new Capture(std::move(options)));
}

Status Capture::Run() {
  Loop loop{options_, stats_, stop_};
  return loop.Run();
}

}  // namespace m2m::capture
