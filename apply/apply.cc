#include "apply.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "barrier.h"
#include "bookkeeping.h"
#include "document_lookup.h"
#include "m2m/backoff.h"
#include "m2m/event_codec.h"
#include "m2m/identifiers.h"

namespace m2m::apply {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsCollectionLevel(EventKind kind) {
  return kind == EventKind::kDrop || kind == EventKind::kRename || kind == EventKind::kDropDatabase ||
         kind == EventKind::kInvalidate;
}

// MySQL refuses ALGORITHM=INSTANT: before 8.0.12 / on some row formats (1845, 1846), or after 64
// instant changes to a table on 8.0.29+ (4092).
bool IsInstantRefused(const Status& st) {
  return st.code() == StatusCode::kMysql &&
         (st.native_code() == 1845 || st.native_code() == 1846 || st.native_code() == 4092);
}

// Row statements are sent several per round trip, up to this many bytes (and under the server's
// max_allowed_packet).
constexpr size_t kMaxRoundTripBytes = size_t{8} << 20;

// ER_NET_PACKET_TOO_LARGE: a statement over the server's max_allowed_packet (MysqlConnection).
constexpr long kPacketTooLarge = 1153;

// librdkafka's receive.message.max.bytes for apply: above the largest record capture can publish
// (its --max-message-bytes is at most librdkafka's message.max.bytes limit, 1,000,000,000), so a
// record of any size capture allows is fetched. Memory is taken per response, as large as it is.
constexpr char kReceiveMaxBytes[] = "1073741824";

std::string PartitionName(const PartitionId& tp) { return tp.first + "[" + std::to_string(tp.second) + "]"; }

// Errors name the document, whose _id may be long: logs get the head, the quarantine table all of it.
std::string Head(const std::string& s) { return s.size() <= 400 ? s : s.substr(0, 400) + "..."; }

}  // namespace

Status ApplyOptions::Validate() const {
  if (kafka.find("bootstrap.servers") == kafka.end()) return Status::Invalid("kafka.bootstrap.servers is not set");
  for (const char* key : {"group.id", "isolation.level", "enable.auto.commit", "auto.offset.reset"}) {
    if (kafka.count(key)) {
      return Status::Invalid(std::string("kafka.") + key + " is set by apply (see --group and docs/apply.md); remove it");
    }
  }
  if (topics.empty() == topic_pattern.empty()) return Status::Invalid("give either topics or a topic pattern");
  for (const std::string& t : topics) {
    if (t.empty()) return Status::Invalid("empty topic name in the topic list");
  }
  if (group.empty()) return Status::Invalid("apply.group is empty");
  M2M_RETURN_NOT_OK(mysql.Validate());
  if (mysql.database.empty()) return Status::Invalid("mysql.database is required: apply writes its tables there");
  M2M_RETURN_NOT_OK(mapping.Validate());
  if (!mapping.spark_transforms.empty()) {
    std::string names;
    for (const std::string& t : mapping.spark_transforms) names += (names.empty() ? "" : ", ") + t;
    return Status::Invalid("mapping: transforms (" + names + ") run only in the Spark engine (docs/spark.md, "
                           "\"Transforms\"); apply would leave their tables unwritten: run mongo2mysql spark, "
                           "or remove the transforms");
  }
  if (mongo) M2M_RETURN_NOT_OK(mongo->Validate());
  if (max_batch_events <= 0) return Status::Invalid("apply.max_batch_events must be positive");
  if (max_batch_time.count() <= 0) return Status::Invalid("apply.max_batch_time must be positive");
  M2M_RETURN_NOT_OK(sql.Validate());
  if (retry_for.count() < 0) return Status::Invalid("apply.retry_for must not be negative");
  return Status::OK();
}

// One run of the apply loop; lives for the duration of Apply::Run. All of it runs on the Run thread,
// the rebalance callbacks included (they are called from inside KafkaConsumer::Poll).
struct Apply::Loop : RebalanceListener {
  ApplyOptions o;  // a copy: instant_add_column may be switched off at run time
  ApplyStats& stats;
  std::atomic<bool>& stop;
  Mapper mapper;

  // A partition this member owns.
  struct Owned {
    std::optional<int64_t> stored;  // next_offset in _m2m_offsets as last read or written; none yet
    int64_t position = 0;           // the next offset expected from Kafka
    std::optional<int64_t> end;     // the last end the consumer reported
    // The offset after the last message Kafka delivered (applied, batched or held by the gate), and
    // its value when `end` was reported. Under read_committed the end lies past commit markers and
    // aborted records that are never delivered, so "applied up to the end" means applied up to
    // what had been delivered when the end was reported.
    int64_t received = 0;
    int64_t received_at_end = 0;
    // Its start offset has been read and sought. Until then nothing of it is applied (its messages
    // are dropped) and it is not at its end, whatever Kafka says.
    bool started = false;
    bool at_end() const { return started && end && position >= received_at_end; }
  };
  std::map<PartitionId, Owned> owned;
  bool assigned_once = false;
  // Nothing may be consumed until Rewind has (re)connected to MySQL and sought every owned partition
  // to its stored offset: at start, after any failed attempt, and after an assignment whose offsets
  // could not be read.
  bool rewind_needed = true;

  // Where the document of an update that needs it is fetched from.
  struct Lookup {
    std::string db, collection;
    BsonDocument key;
  };

  // The batch being built: nothing of it is in MySQL until Flush commits.
  struct Pending {
    Batch batch;
    std::map<PartitionId, int64_t> next;  // per partition: the offset after its last consumed message
    std::map<PartitionId, AppliedEvents> applied;  // per partition: how many, and the last one's time
    std::vector<QuarantinedEvent> quarantine;
    std::map<std::string, Lookup> lookups;  // by DocumentOp::label
    int events = 0;
    Clock::time_point started;
    std::optional<KafkaMessage> last;  // the latest message: quarantined if a one-event batch fails
  } pending;
  // While positive, batches hold one event: the batch that failed is redone event by event to find
  // the event to quarantine.
  int isolate_remaining = 0;
  bool reported_unknown_topic = false;  // warned once that a subscribed topic does not exist yet
  // Barriers held until the partitions before them have caught up (barrier.h), and the messages
  // queued behind them.
  BarrierGate gate;
  int64_t rewinds = 0;  // Rewind calls so far
  std::unique_ptr<KafkaInspector> inspector;  // reads partition ends for the gate; made when first needed

  std::unique_ptr<MysqlConnection> mysql;
  Catalog catalog;
  bool catalog_stale = true;  // the catalog may be ahead of the server: re-read before mapping
  size_t schema_fingerprint = 0;  // of the server's schema when the catalog was read or last changed
  std::unique_ptr<DocumentLookup> lookup;
  std::unique_ptr<KafkaConsumer> consumer;  // last: destroyed first, while the listener still exists

  Loop(const ApplyOptions& options, ApplyStats& s, std::atomic<bool>& st, Mapper m)
      : o(options), stats(s), stop(st), mapper(std::move(m)) {}

  // ---- MySQL -----------------------------------------------------------------------------------

  Status Connect() {
    mysql.reset();
    MysqlOptions server = o.mysql;
    server.database.clear();
    M2M_ASSIGN_OR_RETURN(mysql, MysqlConnection::Connect(server));
    M2M_RETURN_NOT_OK(UseServerLimits());
    M2M_RETURN_NOT_OK(mysql->Execute("CREATE DATABASE IF NOT EXISTS " + QuoteIdentifier(o.mysql.database) +
                                     " DEFAULT CHARACTER SET utf8mb4"));
    M2M_RETURN_NOT_OK(mysql->Execute("USE " + QuoteIdentifier(o.mysql.database)));
    for (const std::string& ddl : BookkeepingDdl()) M2M_RETURN_NOT_OK(mysql->Execute(ddl));
    // Multi-row statements must fit in the server's packet, whatever SqlOptions asks.
    o.sql.max_statement_bytes = std::min(o.sql.max_statement_bytes, PacketRoom());
    catalog_stale = true;
    return Status::OK();
  }

  // JSON columns take what this server takes (MariaDB 31 levels, MySQL 100): the mapping follows.
  Status UseServerLimits() {
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query("SELECT VERSION()"));
    MappingConfig config = mapper.config();
    config.options.limits.max_json_depth =
        TargetLimits::ForServer(rows.empty() ? "" : rows[0][0].value_or("")).max_json_depth;
    if (config.options.limits.max_json_depth == mapper.config().options.limits.max_json_depth) return Status::OK();
    M2M_ASSIGN_OR_RETURN(mapper, Mapper::Make(std::move(config)));
    return Status::OK();
  }

  // The longest text the server takes in one round trip, less a margin; no limit while unknown.
  size_t PacketRoom() const {
    uint64_t packet = mysql->max_allowed_packet();
    return packet > 2048 ? static_cast<size_t>(packet - 1024) : SIZE_MAX;
  }

  // The server's schema of the database, and a fingerprint of it to notice changes by other members.
  Result<std::vector<MysqlConnection::Row>> ReadSchema(size_t* fingerprint) {
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(InformationSchemaQuery(o.mysql.database)));
    std::string all;
    for (const auto& row : rows) {
      for (const auto& cell : row) all += cell.value_or("\x01") + '\x00';
    }
    *fingerprint = std::hash<std::string>{}(all);
    return rows;
  }

  Status ReloadCatalogIfStale() {
    if (!catalog_stale) return Status::OK();
    M2M_ASSIGN_OR_RETURN(auto rows, ReadSchema(&schema_fingerprint));
    M2M_ASSIGN_OR_RETURN(catalog, CatalogFromInformationSchema(rows));
    catalog_stale = false;
    return Status::OK();
  }

  // Runs the batch's DDL under a lock all members of every group writing this database share. The
  // batch was mapped against the schema this member last read; if another member changed it since,
  // the DDL could undo that change (narrow a column it widened), so the batch is remapped instead.
  Status RunSchemaChanges(const std::vector<SchemaChange>& changes) {
    if (changes.empty()) return Status::OK();
    std::string lock = mysql->QuoteString("mongo2mysql-ddl:" + o.mysql.database);
    M2M_ASSIGN_OR_RETURN(auto got, mysql->Query("SELECT GET_LOCK(" + lock + ", 120)"));
    if (got.empty() || got[0].at(0).value_or("0") != "1") {
      return Status(StatusCode::kMysql, "timed out waiting for the DDL lock of " + o.mysql.database, true);
    }
    size_t now = 0;
    auto schema = ReadSchema(&now);
    Status st = schema.status();
    if (st.ok() && now != schema_fingerprint) {
      st = Status(StatusCode::kMysql, "another member changed the schema of " + o.mysql.database + "; remapping",
                  /*retriable=*/true);
    }
    for (size_t i = 0; st.ok() && i < changes.size(); ++i) st = RunSchemaChange(changes[i]);
    if (st.ok()) st = ReadSchema(&schema_fingerprint).status();
    (void)mysql->Query("SELECT RELEASE_LOCK(" + lock + ")");
    return st;
  }

  Result<std::map<PartitionId, int64_t>> ReadStored(const std::vector<PartitionId>& partitions, bool for_update) {
    std::map<PartitionId, int64_t> out;
    if (partitions.empty()) return out;
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(SelectOffsetsSql(o.group, partitions, for_update)));
    for (const auto& r : rows) out[{r.at(0).value(), std::stoi(r.at(1).value())}] = std::stoll(r.at(2).value());
    return out;
  }

  // ---- Where partitions start -----------------------------------------------------------------

  // Where a partition starts, and its offset in _m2m_offsets (none: nothing of it applied yet).
  struct Start {
    std::optional<int64_t> stored;
    int64_t offset = kOffsetBeginning;
  };

  // The start of each of `partitions`: its stored offset, checked against the offsets Kafka still
  // holds (StartOffset in bookkeeping.h).
  Result<std::map<PartitionId, Start>> StartOffsets(const std::vector<PartitionId>& partitions) {
    M2M_ASSIGN_OR_RETURN(auto stored, ReadStored(partitions, false));
    std::vector<PartitionId> applied;  // a partition never applied starts at the beginning, whatever it is
    for (const auto& [tp, next] : stored) applied.push_back(tp);
    M2M_ASSIGN_OR_RETURN(auto ranges, ReadRanges(applied, /*skip_unknown_topics=*/true));
    std::map<PartitionId, Start> out;
    for (const PartitionId& tp : partitions) {
      Start& start = out[tp];
      auto it = stored.find(tp);
      if (it == stored.end()) continue;
      start.stored = start.offset = it->second;
      // A topic deleted under its owner: the next rebalance takes its partitions away, and any fetch
      // meanwhile is guarded by auto.offset.reset=error.
      auto range = ranges.find(tp);
      if (range == ranges.end()) continue;
      std::string lost;
      M2M_ASSIGN_OR_RETURN(start.offset, StartOffset(o.group, tp, start.stored, range->second.first,
                                                     range->second.end, o.accept_lost_events, &lost));
      if (!lost.empty()) spdlog::warn("apply {}: {}", o.group, lost);
    }
    return out;
  }

  void CountWaiting() {
    stats.partitions_waiting = std::count_if(owned.begin(), owned.end(), [](const auto& kv) { return !kv.second.started; });
  }

  // ---- Rebalancing (called from inside consumer->Poll) -----------------------------------------

  Status OnAssign(std::vector<TopicPartition>& partitions) override {
    owned.clear();
    gate.Reset();
    assigned_once = true;
    std::vector<PartitionId> ids;
    for (const TopicPartition& tp : partitions) ids.emplace_back(tp.topic, tp.partition);
    // rewind_needed: an earlier assignment of this Poll found MySQL away; its connection is not to be used.
    Result<std::map<PartitionId, Start>> starts = Status(StatusCode::kMysql, "MySQL not connected yet", true);
    if (!rewind_needed) starts = StartOffsets(ids);
    if (!starts.ok() && !starts.status().retriable()) return starts.status();
    if (!starts.ok()) {
      // MySQL (or the broker) is away. Failing the assignment would leave the partitions with this
      // member and unconsumed for good; they are taken, not started: Run starts them (Rewind) as soon
      // as it can. Meanwhile they sit at their ends, and whatever arrives from there is dropped.
      for (TopicPartition& tp : partitions) {
        owned[{tp.topic, tp.partition}];
        tp.offset = kOffsetEnd;
      }
      rewind_needed = true;
      CountWaiting();
      spdlog::warn("apply {}: assigned {} partitions, not started yet: cannot read their offsets: {}", o.group,
                   partitions.size(), starts.status().ToString());
      return Status::OK();
    }
    std::string where;
    for (TopicPartition& tp : partitions) {
      Owned& own = owned[{tp.topic, tp.partition}];
      const Start& start = starts->at({tp.topic, tp.partition});
      own.stored = start.stored;
      own.position = own.received = std::max<int64_t>(start.offset, 0);
      own.started = true;
      tp.offset = start.offset;
      where += (where.empty() ? "" : ", ") + PartitionName({tp.topic, tp.partition}) + "@" +
               (start.offset >= 0 ? std::to_string(start.offset) : std::string("start"));
    }
    CountWaiting();
    spdlog::info("apply {}: assigned {}", o.group, where.empty() ? "no partitions" : where);
    return Status::OK();
  }

  void OnRevoke(const std::vector<TopicPartition>& partitions) override {
    // Eager rebalancing takes every partition back; the batch in flight is abandoned (nothing of it
    // is in MySQL) and whoever gets its partitions redoes it from the stored offsets.
    if (pending.events > 0) {
      spdlog::info("apply {}: partitions revoked; abandoning a batch of {} events", o.group, pending.events);
    }
    Abandon();
    owned.clear();
    gate.Reset();
    CountWaiting();
  }

  // ---- Building a batch ------------------------------------------------------------------------

  void Abandon() {
    if (pending.events > 0 || !pending.batch.empty()) catalog_stale = true;  // Map ran ahead of the server
    pending = Pending{};
  }

  void Advance(const PartitionId& tp, Owned& own, KafkaMessage message) {
    own.position = message.offset + 1;
    pending.next[tp] = message.offset + 1;
    AppliedEvents& applied = pending.applied[tp];
    applied.events++;
    applied.last_event_ms = message.timestamp_ms;
    if (pending.events++ == 0) pending.started = Clock::now();
    if (isolate_remaining > 0) --isolate_remaining;
    pending.last = std::move(message);
  }

  static QuarantinedEvent Describe(const KafkaMessage& m, std::string error) {
    return {m.topic, m.partition, m.offset, m.key, m.value, std::move(error)};
  }

  void Quarantine(const PartitionId& tp, Owned& own, KafkaMessage m, std::string error) {
    spdlog::warn("apply {}: quarantining {}@{}: {}", o.group, PartitionName(tp), m.offset, Head(error));
    pending.quarantine.push_back(Describe(m, std::move(error)));
    Advance(tp, own, std::move(m));
  }

  // Where a message comes from: Kafka, or the gate (queued behind a barrier, or a barrier let go).
  enum class From { kKafka, kQueue, kReleased };

  Status Consume(KafkaMessage m, From from = From::kKafka) {
    PartitionId tp{m.topic, m.partition};
    auto found = owned.find(tp);
    // Not ours (any more), not started, or already consumed before a seek took effect.
    if (found == owned.end() || !found->second.started || m.offset < found->second.position) return Status::OK();
    if (from == From::kKafka && gate.Queued(tp)) {  // behind a barrier of its partition
      gate.Queue(std::move(m));
      return Status::OK();
    }
    Owned& own = found->second;
    auto decoded = DecodeEvent(m.key, m.value);
    if (!decoded.ok()) {
      Quarantine(tp, own, std::move(m), "cannot decode the event: " + decoded.status().message());
      return Status::OK();
    }
    if (!*decoded) {  // a tombstone: nothing to apply
      Advance(tp, own, std::move(m));
      return Status::OK();
    }
    ChangeEvent& ev = **decoded;
    bool collection_event = IsCollectionLevel(ev.kind);
    M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
    OrderKey key = KeyOf(ev, collection_event, m);
    if (from != From::kReleased && IsBarrier(ev, collection_event)) {
      std::vector<PartitionId> ids;
      for (const auto& [id, own] : owned) ids.push_back(id);
      std::vector<PartitionId> undecided = gate.Undecided(key, ids);
      if (!undecided.empty()) {
        M2M_ASSIGN_OR_RETURN(auto ends, ReadEnds(undecided));
        gate.Hold(std::move(m), key, std::move(ends));
        return Status::OK();
      }
    }
    if (collection_event) {
      int64_t rewound = rewinds;
      M2M_RETURN_NOT_OK(Flush());
      // The batch before it was redone event by event: this message comes again after those.
      if (rewinds != rewound) return Status::OK();
      M2M_RETURN_NOT_OK(ApplyCollectionEvent(tp, own, std::move(m), ev));
    } else {
      M2M_RETURN_NOT_OK(ConsumeDocumentEvent(tp, own, std::move(m), ev));
    }
    gate.Admitted(key);
    return Status::OK();
  }

  // An event whose effect depends on other collections' tables (barrier.h): a drop or rename, or
  // the first event of a collection without tables (a rename's target, or one created again).
  bool IsBarrier(const ChangeEvent& ev, bool collection_event) const {
    if (ev.kind == EventKind::kInvalidate) return false;
    return collection_event || catalog.CollectionTables(ev.collection).empty();
  }

  // The offsets Kafka holds of each of `partitions`, from the broker; with `skip_unknown_topics`,
  // none for the partitions of topics the broker does not know.
  Result<std::map<PartitionId, KafkaInspector::Range>> ReadRanges(const std::vector<PartitionId>& partitions,
                                                                  bool skip_unknown_topics = false) {
    std::map<PartitionId, KafkaInspector::Range> out;
    if (partitions.empty()) return out;
    if (!inspector) {
      M2M_ASSIGN_OR_RETURN(inspector, KafkaInspector::Make(o.kafka, std::chrono::seconds(30)));
    }
    std::set<std::string> topics;
    for (const PartitionId& tp : partitions) topics.insert(tp.first);
    for (const std::string& topic : topics) {
      auto all = inspector->Ranges(topic);
      if (skip_unknown_topics && IsUnknownTopic(all.status())) continue;
      M2M_RETURN_NOT_OK(all.status());
      for (KafkaInspector::Range& range : *all) {
        PartitionId id{range.topic, range.partition};
        if (std::find(partitions.begin(), partitions.end(), id) != partitions.end()) out[id] = std::move(range);
      }
    }
    return out;
  }

  // The end (last stable offset) of each of `partitions`, from the broker.
  Result<std::map<PartitionId, int64_t>> ReadEnds(const std::vector<PartitionId>& partitions) {
    M2M_ASSIGN_OR_RETURN(auto ranges, ReadRanges(partitions));
    std::map<PartitionId, int64_t> ends;
    for (const auto& [tp, range] : ranges) ends[tp] = range.end;
    return ends;
  }

  // Pauses the partitions whose messages the gate let go (its byte bound), and fetches again, from
  // the first message let go, those whose queue has drained (barrier.h, TakeFlow).
  Status Throttle() {
    BarrierGate::Flow flow = gate.TakeFlow();
    if (flow.empty()) return Status::OK();
    for (const TopicPartition& tp : flow.pause) {
      spdlog::info("apply {}: {} bytes wait behind barriers; pausing {} until its queue drains", o.group,
                   gate.queued_bytes(), PartitionName({tp.topic, tp.partition}));
    }
    M2M_RETURN_NOT_OK(consumer->Pause(flow.pause));
    M2M_RETURN_NOT_OK(consumer->Seek(flow.seek));
    for (const TopicPartition& tp : flow.seek) {
      auto own = owned.find({tp.topic, tp.partition});
      if (own != owned.end()) own->second.end.reset();  // it lies past messages not applied yet
    }
    return consumer->Resume(flow.resume);
  }

  // How far each owned partition has been consumed, for the gate.
  std::map<PartitionId, int64_t> ConsumedPositions() const {
    std::map<PartitionId, int64_t> out;
    for (const auto& [tp, own] : owned) out[tp] = std::max(own.position, own.end.value_or(0));
    return out;
  }

  Status ConsumeDocumentEvent(const PartitionId& tp, Owned& own, KafkaMessage m, const ChangeEvent& ev) {
    auto mapped = mapper.Map(ev, catalog);
    if (!mapped.ok()) {
      Quarantine(tp, own, std::move(m), mapped.status().message());
      return Status::OK();
    }
    if (mapped->document && mapped->document->kind == DocumentOpKind::kNeedsFullDocument) {
      const DocumentOp& op = *mapped->document;
      if (!lookup) {
        std::string error = op.label + ": the update cannot be applied column by column (" + op.reason +
                            ") and apply has no --mongo-uri to fetch the document; run capture with "
                            "--full-document updateLookup (its default) or give apply --mongo-uri";
        mapped->document.reset();  // keep the schema changes the catalog already holds
        pending.batch.Add(std::move(*mapped), catalog);
        Quarantine(tp, own, std::move(m), std::move(error));
        return Status::OK();
      }
      pending.lookups[op.label] = Lookup{ev.db, ev.collection, ev.document_key};
    }
    pending.batch.Add(std::move(*mapped), catalog);
    Advance(tp, own, std::move(m));
    return Status::OK();
  }

  // A drop or rename: after the batch before it has committed, its DDL (RENAME TABLE / DROP TABLE IF
  // EXISTS, or nothing when kept) runs alone, then a transaction moves the offset past it. Replayed
  // after a crash in between, the catalog read back from the server no longer has the old tables,
  // so the mapper produces no statement the second time: the DDL is idempotent.
  Status ApplyCollectionEvent(const PartitionId& tp, Owned& own, KafkaMessage m, const ChangeEvent& ev) {
    M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
    auto mapped = mapper.Map(ev, catalog);
    if (!mapped.ok()) {
      Quarantine(tp, own, std::move(m), mapped.status().message());
      return Flush();
    }
    if (mapped->collection) {
      spdlog::info("apply {}: {} ({}@{})", o.group, DescribeCollectionOp(*mapped->collection), PartitionName(tp),
                   m.offset);
      Batch alone;
      alone.Add(std::move(*mapped), catalog);
      catalog_stale = true;  // until the DDL below has run
      for (const Batch::Segment& seg : alone.segments()) {
        M2M_ASSIGN_OR_RETURN(SegmentSql sql, RenderSegment(seg, o.sql));
        for (const std::string& s : sql.collection) {
          M2M_RETURN_NOT_OK(mysql->Execute(s));
          stats.ddl_statements++;
        }
      }
      M2M_RETURN_NOT_OK(ReadSchema(&schema_fingerprint).status());
      catalog_stale = false;
    }
    Advance(tp, own, std::move(m));
    return Flush();
  }

  // ---- Writing a batch -------------------------------------------------------------------------

  // Fetches the documents that updates in the batch need and adds them as upserts (or deletes when
  // the document is gone).
  Status ResolveLookups() {
    std::vector<std::string> labels;
    for (const DocumentOp* op : pending.batch.NeedsFullDocument()) labels.push_back(op->label);
    for (const std::string& label : labels) {
      const Lookup& l = pending.lookups.at(label);
      M2M_ASSIGN_OR_RETURN(auto doc, lookup->Find(l.db, l.collection, l.key));
      ChangeEvent ev;
      ev.kind = doc ? EventKind::kReplace : EventKind::kDelete;
      ev.db = l.db;
      ev.collection = l.collection;
      ev.document_key = l.key;
      ev.after = std::move(doc);
      M2M_ASSIGN_OR_RETURN(MappedEvent mapped, mapper.Map(ev, catalog));
      pending.batch.Add(std::move(mapped), catalog);
    }
    return Status::OK();
  }

  Status RunSchemaChange(const SchemaChange& change) {
    for (const std::string& s : RenderSchemaChange(change, o.sql)) {
      Status st = mysql->Execute(s);
      if (IsInstantRefused(st) && o.sql.instant_add_column) {
        spdlog::warn("apply {}: the server refuses ALGORITHM=INSTANT ({}); adding columns without it from now on",
                     o.group, st.message());
        o.sql.instant_add_column = false;
        return RunSchemaChange(change);
      }
      M2M_RETURN_NOT_OK(st);
      stats.ddl_statements++;
    }
    return Status::OK();
  }

  // Fails (retriable) unless the group's offsets of the batch's partitions are still what this
  // member last read or wrote: another member may have applied them meanwhile.
  Status CheckOffsetsUnchanged() {
    std::vector<PartitionId> ids;
    for (const auto& [tp, next] : pending.next) ids.push_back(tp);
    M2M_ASSIGN_OR_RETURN(auto stored, ReadStored(ids, /*for_update=*/true));
    for (const PartitionId& tp : ids) {
      auto it = stored.find(tp);
      std::optional<int64_t> now = it == stored.end() ? std::nullopt : std::optional<int64_t>(it->second);
      auto own = owned.find(tp);
      if (own == owned.end() || own->second.stored != now) {
        return Status(StatusCode::kMysql,
                      "the stored offset of " + PartitionName(tp) + " moved to " +
                          (now ? std::to_string(*now) : std::string("none")) +
                          ": another member of group " + o.group + " applied it; rereading",
                      /*retriable=*/true);
      }
    }
    return Status::OK();
  }

  Status ExecuteRows(const std::vector<std::string>& statements) {
    size_t limit = std::min(kMaxRoundTripBytes, PacketRoom());
    std::string round_trip;
    for (const std::string& s : statements) {
      if (!round_trip.empty() && round_trip.size() + s.size() + 1 > limit) {
        M2M_RETURN_NOT_OK(mysql->Execute(round_trip));
        round_trip.clear();
      }
      round_trip += round_trip.empty() ? s : ";" + s;
    }
    return round_trip.empty() ? Status::OK() : mysql->Execute(round_trip);
  }

  // The documents of the batch, for an error about its statements (a batch that fails is redone one
  // event at a time, so the error that quarantines an event names its one document).
  std::string BatchDocuments() const {
    constexpr size_t kNamed = 3;
    std::vector<std::string> labels;
    size_t count = 0;
    for (const Batch::Segment& seg : pending.batch.segments()) {
      for (const DocumentOp& d : seg.documents) {
        if (count++ < kNamed) labels.push_back(d.label);
      }
    }
    std::string out = fmt::format("{}", fmt::join(labels, ", "));
    if (count > kNamed) out += fmt::format(" and {} more", count - kNamed);
    return out;
  }

  Status WriteBatch() {
    if (lookup) M2M_RETURN_NOT_OK(ResolveLookups());
    std::vector<std::string> rows;
    for (const Batch::Segment& seg : pending.batch.segments()) {
      // DDL commits implicitly: it runs before the transaction. A crash after it leaves a schema the
      // catalog reads back at restart, so the mapper does not emit it again.
      catalog_stale = true;
      M2M_RETURN_NOT_OK(RunSchemaChanges(seg.schema_changes));
      catalog_stale = false;
      M2M_ASSIGN_OR_RETURN(SegmentSql sql, RenderSegment(seg, o.sql));
      for (std::string& s : sql.rows) rows.push_back(std::move(s));
    }
    M2M_RETURN_NOT_OK(mysql->Begin());
    M2M_RETURN_NOT_OK(CheckOffsetsUnchanged());
    Status st = ExecuteRows(rows);
    if (st.native_code() == kPacketTooLarge) st = st.WithContext(BatchDocuments());
    M2M_RETURN_NOT_OK(st);
    M2M_RETURN_NOT_OK(ExecuteRows(InsertQuarantineSql(o.group, pending.quarantine, o.sql.max_statement_bytes)));
    M2M_RETURN_NOT_OK(mysql->Execute(UpsertOffsetsSql(o.group, pending.next, pending.applied)));
    return mysql->Commit();
  }

  void Committed() {
    std::vector<TopicPartition> positions;
    for (const auto& [tp, next] : pending.next) {
      owned[tp].stored = next;
      positions.push_back({tp.first, tp.second, next});
    }
    // For monitoring tools only (kafka-consumer-groups --describe shows the lag); failures do not matter.
    (void)consumer->CommitAsync(positions);
    stats.events += pending.events;
    stats.batches++;
    stats.quarantined += static_cast<int64_t>(pending.quarantine.size());
    for (const auto& [tp, applied] : pending.applied) stats.events_by_topic.Add(tp.first, applied.events);
    if (pending.last) stats.last_event_ms = pending.last->timestamp_ms;
    pending = Pending{};
  }

  Status Flush() {
    if (pending.events == 0) return Status::OK();
    Status st = WriteBatch();
    if (st.ok()) {
      Committed();
      return Status::OK();
    }
    if (mysql) (void)mysql->Rollback();
    if (!IsEventError(st)) return st;  // Run rewinds (retriable) or stops
    if (pending.events > 1) {
      spdlog::warn("apply {}: a batch of {} events failed ({}); redoing it one event at a time", o.group,
                   pending.events, st.ToString());
      isolate_remaining = pending.events;
      return Rewind();
    }
    // One event the server refuses: quarantine it in a transaction of its own.
    QuarantinedEvent bad = Describe(*pending.last, st.message());
    spdlog::warn("apply {}: quarantining {}@{}: {}", o.group, PartitionName({bad.topic, bad.partition}), bad.offset,
                 Head(bad.error));
    Pending only;
    only.next = std::move(pending.next);
    only.applied = std::move(pending.applied);
    only.events = pending.events;
    only.last = std::move(pending.last);
    only.quarantine.push_back(std::move(bad));
    Abandon();
    pending = std::move(only);
    M2M_RETURN_NOT_OK(Connect());  // some refusals (a packet too large) close the connection
    st = WriteBatch();
    if (!st.ok()) return st;
    Committed();
    return Status::OK();
  }

  // Forgets the batch in flight and starts every owned partition again from its stored offset, with
  // a fresh connection and the schema read back from the server. Until it has succeeded, nothing is
  // consumed (rewind_needed).
  Status Rewind() {
    Abandon();
    gate.Reset();
    ++rewinds;
    rewind_needed = true;
    M2M_RETURN_NOT_OK(Connect());
    std::vector<PartitionId> ids;
    for (const auto& [tp, own] : owned) ids.push_back(tp);
    M2M_ASSIGN_OR_RETURN(auto starts, StartOffsets(ids));
    std::vector<TopicPartition> positions;
    for (const auto& [tp, start] : starts) positions.push_back({tp.first, tp.second, start.offset});
    M2M_RETURN_NOT_OK(consumer->Seek(positions));
    std::string started;  // the partitions that were waiting
    for (auto& [tp, own] : owned) {
      const Start& start = starts.at(tp);
      if (!own.started) {
        started += (started.empty() ? "" : ", ") + PartitionName(tp) + "@" +
                   (start.offset >= 0 ? std::to_string(start.offset) : std::string("start"));
      }
      own.stored = start.stored;
      own.position = own.received = std::max<int64_t>(start.offset, 0);
      own.end.reset();
      own.started = true;
    }
    if (!started.empty()) spdlog::info("apply {}: started {}", o.group, started);
    rewind_needed = false;
    CountWaiting();
    return Status::OK();
  }

  // ---- The loop --------------------------------------------------------------------------------

  bool CaughtUp() const {
    return assigned_once && !rewind_needed && pending.events == 0 && AllConsumed();
  }

  // Every message up to the ends the consumer reported is in the batch or committed.
  bool AllConsumed() const {
    return gate.empty() && std::all_of(owned.begin(), owned.end(), [](const auto& kv) { return kv.second.at_end(); });
  }

  // Consumes one batch and commits it.
  Status Step() {
    int limit = isolate_remaining > 0 ? 1 : o.max_batch_events;
    while (!stop.load() && !rewind_needed && pending.events < limit) {
      auto waited = Clock::now() - pending.started;
      if (pending.events > 0 && waited >= o.max_batch_time) break;
      if (o.until_caught_up && CaughtUp()) break;
      M2M_RETURN_NOT_OK(Throttle());
      if (!gate.empty()) {
        gate.Release(ConsumedPositions());
        if (auto next = gate.Pop()) {
          M2M_RETURN_NOT_OK(Consume(std::move(next->message), next->released ? From::kReleased : From::kQueue));
          continue;
        }
      }
      auto wait = pending.events > 0
                      ? std::chrono::duration_cast<std::chrono::milliseconds>(o.max_batch_time - waited)
                      : std::chrono::milliseconds(200);
      auto polled = consumer->Poll(std::max(wait, std::chrono::milliseconds(1)));
      if (IsUnknownTopic(polled.status())) {
        // Capture creates a collection's topic with its first event; a subscription may come first.
        spdlog::log(reported_unknown_topic ? spdlog::level::debug : spdlog::level::warn, "apply {}: {}", o.group,
                    polled.status().message());
        reported_unknown_topic = true;
        continue;
      }
      M2M_ASSIGN_OR_RETURN(auto m, std::move(polled));
      if (!m) {
        if (pending.events == 0) break;  // idle: let Run report progress
        continue;
      }
      if (m->end_of_partition) {
        // The end under read_committed may lie past a transaction marker, beyond the last message:
        // any end-of-partition notice means everything before it was delivered (librdkafka drops
        // notices from before a seek).
        auto own = owned.find({m->topic, m->partition});
        if (own != owned.end() && own->second.started) {
          own->second.end = m->offset;
          own->second.received_at_end = own->second.received;
        }
        // Everything up to the end is consumed: no reason to wait for the batch timer.
        if (o.until_caught_up && AllConsumed()) break;
        continue;
      }
      if (auto own = owned.find({m->topic, m->partition}); own != owned.end()) {
        own->second.received = std::max(own->second.received, m->offset + 1);
      }
      M2M_RETURN_NOT_OK(Consume(std::move(*m)));
    }
    return Flush();
  }

  // The clients that need no server yet; MySQL is connected by the first Rewind.
  Status Setup() {
    if (o.mongo) {
      M2M_ASSIGN_OR_RETURN(lookup, DocumentLookup::Connect(*o.mongo));
    }
    KafkaConfig kc = o.kafka;
    kc["group.id"] = o.group;
    kc["isolation.level"] = "read_committed";
    kc["enable.auto.commit"] = "false";
    kc["enable.auto.offset.store"] = "false";
    kc["enable.partition.eof"] = "true";  // until_caught_up and the barriers' condition 3 (barrier.h)
    // Partitions start at offsets apply chooses (StartOffsets); a fetch that finds its offset gone
    // (retention overtook apply) must stop with the gap named, never jump elsewhere unnoticed: the
    // error makes Run rewind, and the rewind's StartOffsets names the gap.
    kc["auto.offset.reset"] = "error";
    kc.emplace("receive.message.max.bytes", kReceiveMaxBytes);
    std::vector<std::string> subscription = o.topics;
    if (!o.topic_pattern.empty()) subscription = {"^" + o.topic_pattern};
    M2M_ASSIGN_OR_RETURN(consumer, KafkaConsumer::Make(kc, subscription, this));
    return Status::OK();
  }

  // What a failed attempt waits for, for the log.
  std::string Awaited(const Status& st) const {
    switch (st.code()) {
      case StatusCode::kMysql:
        return fmt::format("MySQL at {}:{}", o.mysql.host, o.mysql.port);
      case StatusCode::kKafka:
        return "Kafka at " + o.kafka.at("bootstrap.servers");
      case StatusCode::kMongo:
        return "MongoDB";
      default:
        return "the next attempt";
    }
  }

  Status Run() {
    M2M_RETURN_NOT_OK(Setup());
    spdlog::info("apply {}: consuming {} into MySQL database {}", o.group,
                 o.topic_pattern.empty() ? fmt::format("{}", fmt::join(o.topics, ",")) : "^" + o.topic_pattern,
                 o.mysql.database);
    auto last_report = Clock::now();
    int64_t reported_events = 0;
    Backoff backoff;
    std::optional<Clock::time_point> failing_since;  // the first failure since the last successful step
    while (!stop.load()) {
      const bool rewinding = rewind_needed;
      Status st = rewinding ? Rewind() : Step();
      if (!st.ok()) {
        Abandon();
        rewind_needed = true;
        if (!st.retriable()) return st;
        auto now = Clock::now();
        if (!failing_since) failing_since = now;
        double failing = std::chrono::duration<double>(now - *failing_since).count();
        if (o.retry_for.count() > 0 && now - *failing_since >= o.retry_for) {
          return st.WithContext(fmt::format("gave up after {:.0f} s of failed attempts (--retry-for {})", failing,
                                            o.retry_for.count()));
        }
        stats.retries++;
        stats.lag_events = consumer->Lag();
        spdlog::warn("apply {}: {}; waiting for {}: next attempt in {:.1f} s, then redoing from the stored offsets "
                     "(failing for {:.0f} s{})",
                     o.group, st.ToString(), Awaited(st), backoff.next().count() / 1000.0, failing,
                     o.retry_for.count() > 0 ? fmt::format(", giving up after {} s", o.retry_for.count()) : "");
        backoff.Wait(stop);
        continue;
      }
      if (rewinding) continue;
      if (failing_since) {
        spdlog::info("apply {}: working again after {:.0f} s of failed attempts", o.group,
                     std::chrono::duration<double>(Clock::now() - *failing_since).count());
      }
      failing_since.reset();
      backoff.Reset();
      stats.lag_events = consumer->Lag();
      if (o.until_caught_up && CaughtUp()) {
        spdlog::info("apply {}: caught up: {} events in {} batches, {} quarantined", o.group, stats.events.load(),
                     stats.batches.load(), stats.quarantined.load());
        return Status::OK();
      }
      if (Clock::now() - last_report >= o.progress_interval) {
        double secs = std::chrono::duration<double>(Clock::now() - last_report).count();
        int64_t events = stats.events.load();
        int64_t last = stats.last_event_ms.load();
        int64_t waiting = stats.partitions_waiting.load();
        spdlog::info("apply {}: {} events ({:.0f}/s), {} batches, {} quarantined, {} retries, lag {:.1f} s{}", o.group,
                     events, (events - reported_events) / secs, stats.batches.load(), stats.quarantined.load(),
                     stats.retries.load(), last ? (NowMs() - last) / 1000.0 : 0.0,
                     waiting ? fmt::format(", {} partitions not started yet", waiting) : "");
        last_report = Clock::now();
        reported_events = events;
      }
    }
    return Flush();
  }
};

Apply::~Apply() = default;

Result<std::unique_ptr<Apply>> Apply::Make(ApplyOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  return std::unique_ptr<Apply>(new Apply(std::move(options)));
}

Status Apply::Run() {
  M2M_ASSIGN_OR_RETURN(Mapper mapper, Mapper::Make(options_.mapping));
  Loop loop(options_, stats_, stop_, std::move(mapper));
  return loop.Run();
}

}  // namespace m2m::apply
