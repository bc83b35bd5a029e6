#include "applier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "document_lookup.h"
#include "m2m/event_codec.h"
#include "m2m/identifiers.h"
#include "m2m/target_limits.h"

namespace m2m::apply {
namespace {

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

// A batch whose DDL met a schema another writer had just changed is mapped again this many times
// before the failure goes to the host (which then redoes it later).
constexpr int kRemaps = 5;

// Errors name the document, whose _id may be long: logs get the head, the quarantine table all of it.
std::string Head(const std::string& s) { return s.size() <= 400 ? s : s.substr(0, 400) + "..."; }

size_t BytesOf(const KafkaMessage& m) {
  return (m.key ? m.key->size() : 0) + (m.value ? m.value->size() : 0);
}

QuarantinedEvent Describe(const KafkaMessage& m, std::string error) {
  return {m.topic, m.partition, m.offset, m.key, m.value, std::move(error)};
}

}  // namespace

Status ApplierOptions::Validate() const {
  if (group.empty()) return Status::Invalid("apply.group is empty");
  M2M_RETURN_NOT_OK(mysql.Validate());
  if (mysql.database.empty()) return Status::Invalid("mysql.database is required: apply writes its tables there");
  M2M_RETURN_NOT_OK(mapping.Validate());
  if (mongo) M2M_RETURN_NOT_OK(mongo->Validate());
  return sql.Validate();
}

// The thread that writes a batch while the host builds the next (Applier::CommitInBackground). It
// runs one job at a time; Wait hands the job's outcome back to the host's thread, and with it
// everything the job wrote (the mutex orders the two threads' accesses).
class BackgroundWriter {
 public:
  ~BackgroundWriter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Start(std::function<Status()> job) {
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = std::move(job);
      outcome_.reset();
    }
    cv_.notify_all();
  }

  // Whether the job has ended (its outcome waits for Wait).
  bool done() const {
    std::lock_guard<std::mutex> lock(mu_);
    return outcome_.has_value();
  }

  Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return outcome_.has_value(); });
    Status st = std::move(*outcome_);
    outcome_.reset();
    return st;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return quit_ || job_; });
      if (quit_) return;
      std::function<Status()> job = std::move(*job_);
      job_.reset();
      lock.unlock();
      Status st = job();
      lock.lock();
      outcome_ = std::move(st);
      cv_.notify_all();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::function<Status()>> job_;
  std::optional<Status> outcome_;
  bool quit_ = false;
  std::thread thread_;
};

struct Applier::Impl {
  ApplierOptions o;  // a copy: instant_add_column may be switched off at run time
  ApplyStats& stats;
  Mapper mapper;
  CommitListener on_commit;

  std::unique_ptr<MysqlConnection> mysql;
  Catalog catalog;
  bool catalog_stale = true;  // the catalog may be ahead of the server: re-read before mapping
  size_t schema_fingerprint = 0;  // of the server's schema when the catalog was read or last changed
  bool schema_moved = false;  // the last DDL attempt found the schema changed by another writer
  std::unique_ptr<DocumentLookup> lookup;

  // Per owned partition: next_offset in _m2m_offsets as last read or written; none: none stored yet.
  std::map<PartitionId, std::optional<int64_t>> stored;

  // Where the document of an update that needs it is fetched from.
  struct Lookup {
    std::string db, collection;
    BsonDocument key;
  };

  // The batch being built: nothing of it is in MySQL until Commit.
  struct Pending {
    Batch batch;
    std::map<PartitionId, int64_t> next;  // per partition: the offset after its last record
    std::map<PartitionId, AppliedEvents> applied;  // per partition: how many, and the last one's time
    std::vector<QuarantinedEvent> quarantine;
    // Statements of the transaction's own: a collection event's record, a quarantine replay's mark.
    std::vector<std::string> bookkeeping;
    std::map<std::string, Lookup> lookups;  // by DocumentOp::label
    int events = 0;
    // Every record added since the last commit, in order: to redo the batch one event at a time, to
    // map it again, or (Redo) to add it again after a retriable failure.
    std::vector<KafkaMessage> records;
    size_t bytes = 0;
    // A retriable failure left only `records`: Redo or Abandon before anything else.
    bool kept = false;
    std::vector<int64_t> event_ms;  // the wall times of its change events, for their age at commit
    double write_seconds = 0;       // how long its WriteBatch took
    std::chrono::system_clock::time_point committed_at;
  } pending;

  // Pipelining (CommitInBackground). While `writing`, the writer thread owns `inflight`, the MySQL
  // connection, schema_fingerprint, schema_moved and o.sql, and reads `stored` (the host's thread
  // only reads it meanwhile: anything that would change it, or use the connection, syncs first).
  // The host's thread keeps the catalog, the mapper and `pending`: a batch carries copies of its
  // tables' definitions, so building the next one never touches what the writer reads.
  Pending inflight;
  bool writing = false;  // a batch handed to the writer and not yet synced
  BackgroundWriter writer;
  // The wall time of the change event Add is adding (0: none, or a snapshot read), which Advance
  // keeps with the batch; every Advance happens inside an Add.
  int64_t adding_event_ms = 0;

  Impl(ApplierOptions options, ApplyStats& s, Mapper m) : o(std::move(options)), stats(s), mapper(std::move(m)) {}

  // ---- MySQL -----------------------------------------------------------------------------------

  Status ConnectServer() {
    mysql.reset();
    MysqlOptions server = o.mysql;
    server.database.clear();
    M2M_ASSIGN_OR_RETURN(auto connection, MysqlConnection::Connect(server));
    M2M_RETURN_NOT_OK(connection->Execute("CREATE DATABASE IF NOT EXISTS " + QuoteIdentifier(o.mysql.database) +
                                          " DEFAULT CHARACTER SET utf8mb4"));
    M2M_RETURN_NOT_OK(connection->Execute("USE " + QuoteIdentifier(o.mysql.database)));
    for (const std::string& ddl : BookkeepingDdl()) M2M_RETURN_NOT_OK(connection->Execute(ddl));
    mysql = std::move(connection);
    M2M_RETURN_NOT_OK(UseServerLimits());
    // Multi-row statements must fit in the server's packet, whatever SqlOptions asks.
    o.sql.max_statement_bytes = std::min(o.sql.max_statement_bytes, PacketRoom());
    catalog_stale = true;
    return Status::OK();
  }

  Status EnsureConnected() { return mysql ? Status::OK() : ConnectServer(); }

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

  // The server's schema of the database, and a fingerprint of it to notice changes by other writers.
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
    if (!catalog_stale && mysql) return Status::OK();
    M2M_RETURN_NOT_OK(Sync());
    M2M_RETURN_NOT_OK(EnsureConnected());
    if (!catalog_stale) return Status::OK();
    M2M_ASSIGN_OR_RETURN(auto rows, ReadSchema(&schema_fingerprint));
    M2M_ASSIGN_OR_RETURN(catalog, CatalogFromInformationSchema(rows));
    catalog_stale = false;
    return Status::OK();
  }

  // Runs the batch's DDL under a lock all writers of this database share (members of every group,
  // Spark tasks). The batch was mapped against the schema this Applier last read; if another writer
  // changed it since, the DDL could undo that change (narrow a column it widened), so the batch is
  // mapped again instead (schema_moved).
  std::string DdlLockName() const { return mysql->QuoteString("mongo2mysql-ddl:" + o.mysql.database); }

  // The lock every writer of the database takes around its DDL (held by the session; it nests).
  Status LockDdl() {
    M2M_ASSIGN_OR_RETURN(auto got, mysql->Query("SELECT GET_LOCK(" + DdlLockName() + ", 120)"));
    if (got.empty() || got[0].at(0).value_or("0") != "1") {
      return Status(StatusCode::kMysql, "timed out waiting for the DDL lock of " + o.mysql.database, true);
    }
    return Status::OK();
  }

  void UnlockDdl() {
    if (mysql) (void)mysql->Query("SELECT RELEASE_LOCK(" + DdlLockName() + ")");
  }

  Status RunSchemaChanges(const std::vector<SchemaChange>& changes) {
    if (changes.empty()) return Status::OK();
    M2M_RETURN_NOT_OK(LockDdl());
    size_t now = 0;
    auto schema = ReadSchema(&now);
    Status st = schema.status();
    if (st.ok() && now != schema_fingerprint) {
      schema_moved = true;
      st = Status(StatusCode::kMysql, "another writer changed the schema of " + o.mysql.database + "; remapping",
                  /*retriable=*/true);
    }
    for (size_t i = 0; st.ok() && i < changes.size(); ++i) st = RunSchemaChange(changes[i]);
    if (st.ok()) st = ReadSchema(&schema_fingerprint).status();
    UnlockDdl();
    return st;
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

  Result<std::map<PartitionId, std::optional<int64_t>>> Own(const std::vector<PartitionId>& partitions) {
    M2M_RETURN_NOT_OK(Sync());
    std::map<PartitionId, std::optional<int64_t>> out;
    for (const PartitionId& tp : partitions) out[tp];
    if (partitions.empty()) return out;
    M2M_RETURN_NOT_OK(EnsureConnected());
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(SelectOffsetsSql(o.group, partitions, /*for_update=*/false)));
    for (const auto& r : rows) out[{r.at(0).value(), std::stoi(r.at(1).value())}] = std::stoll(r.at(2).value());
    for (const auto& [tp, next] : out) stored[tp] = next;
    // Their previous owner (another member, another Spark worker) may have changed their tables
    // since this Applier read the schema: a rename mapped against a stale catalog would find none.
    catalog_stale = true;
    return out;
  }

  // ---- Building a batch ------------------------------------------------------------------------

  Result<PreparedRecord> Prepare(KafkaMessage&& m) {
    auto decoded = DecodeEvent(m.key, m.value);
    if (decoded.ok() && *decoded) M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
    PreparedRecord out;
    out.message = std::move(m);
    if (!decoded.ok()) {
      out.error = "cannot decode the event: " + decoded.status().message();
      return out;
    }
    if (!*decoded) return out;  // a tombstone
    out.event = std::move(**decoded);
    out.collection_event = IsCollectionLevel(out.event->kind);
    out.key = KeyOf(*out.event, out.collection_event, out.message);
    out.barrier = out.event->kind != EventKind::kInvalidate &&
                  (out.collection_event || catalog.CollectionTables(out.event->collection).empty());
    return out;
  }

  Status Add(PreparedRecord r) {
    M2M_RETURN_NOT_OK(NotKept());
    PartitionId tp{r.message.topic, r.message.partition};
    if (!stored.count(tp)) {  // owning it changes `stored`, which the writer reads
      if (Status st = Sync(); !st.ok()) {
        pending.bytes += BytesOf(r.message);
        pending.records.push_back(std::move(r.message));  // kept behind the batch's
        return st;
      }
    }
    adding_event_ms = r.event && r.event->kind != EventKind::kRead ? r.event->wall_time_ms : 0;
    Status owned = stored.count(tp) ? Status::OK() : Own({tp}).status();
    if (owned.ok()) {
      if (const auto& s = stored.at(tp); s && r.message.offset < *s) return Status::OK();  // applied already
    }
    pending.bytes += BytesOf(r.message);
    pending.records.push_back(std::move(r.message));
    if (!owned.ok()) {
      Keep();
      return owned;
    }
    const KafkaMessage& m = pending.records.back();
    if (!r.error.empty()) return Quarantine(m, std::move(r.error));
    if (!r.event) {  // a tombstone: nothing to apply
      Advance(m);
      return Status::OK();
    }
    M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
    return r.collection_event ? AddCollectionEvent(*r.event) : AddDocumentEvent(m, *r.event);
  }

  Status NotKept() const {
    return pending.kept ? Status::Invalid("apply: a failed batch is kept; Redo or Abandon it first") : Status::OK();
  }

  // Prepare and Add; on any failure the record is kept with the batch's for Redo.
  Status AddRecord(KafkaMessage m) {
    auto r = Prepare(std::move(m));
    if (!r.ok()) {
      pending.records.push_back(std::move(m));  // Prepare left it as it was
      Keep();
      return r.status();
    }
    return Add(std::move(*r));
  }

  void Advance(const KafkaMessage& m) {
    PartitionId tp{m.topic, m.partition};
    pending.next[tp] = m.offset + 1;
    AppliedEvents& applied = pending.applied[tp];
    applied.events++;
    applied.last_event_ms = m.timestamp_ms;
    pending.events++;
    if (adding_event_ms > 0) pending.event_ms.push_back(adding_event_ms);
  }

  Status Quarantine(const KafkaMessage& m, std::string error) {
    spdlog::warn("apply {}: quarantining {}@{}: {}", o.group, PartitionName({m.topic, m.partition}), m.offset,
                 Head(error));
    pending.quarantine.push_back(Describe(m, std::move(error)));
    Advance(m);
    return Status::OK();
  }

  Status AddDocumentEvent(const KafkaMessage& m, const ChangeEvent& ev) {
    auto mapped = mapper.Map(ev, catalog);
    if (!mapped.ok()) return Quarantine(m, mapped.status().message());
    if (mapped->document && mapped->document->kind == DocumentOpKind::kNeedsFullDocument) {
      const DocumentOp& op = *mapped->document;
      if (!lookup && ev.document_gone) {
        // What the lookup would find: no document. Its delete follows in the stream; the row goes now,
        // with the child rows the delta would have needed the whole document for.
        auto deleted = MapCurrentState(ev.db, ev.collection, ev.document_key, std::nullopt);
        if (!deleted.ok()) return Quarantine(m, deleted.status().message());
        mapped->document = std::move(deleted->document);
      } else if (!lookup) {
        std::string error = op.label + ": the update cannot be applied column by column (" + op.reason +
                            ") and apply has no --mongo-uri to fetch the document; run capture with "
                            "--full-document updateLookup (its default) or give apply --mongo-uri";
        mapped->document.reset();  // keep the schema changes the catalog already holds
        pending.batch.Add(std::move(*mapped), catalog);
        return Quarantine(m, std::move(error));
      } else {
        pending.lookups[op.label] = Lookup{ev.db, ev.collection, ev.document_key};
      }
    }
    pending.batch.Add(std::move(*mapped), catalog);
    Advance(m);
    return Status::OK();
  }

  // A drop or rename that changes tables (on_drop: drop, on_rename: rename) runs once for all its
  // copies (Arrive); any other is only logged, by each copy.
  bool ChangesTables(const ChangeEvent& ev) const {
    const MappingOptions& m = mapper.config().options;
    return (ev.kind == EventKind::kDrop && m.on_drop == DropPolicy::kDrop) ||
           (ev.kind == EventKind::kRename && m.on_rename == RenamePolicy::kRename);
  }

  static CollectionEventCopy CopyOf(const ChangeEvent& ev, const KafkaMessage& m) {
    return {{m.topic, ev.cluster_time_s, ev.cluster_time_i}, m.partition, m.offset,
            std::string(EventKindName(ev.kind)), ev.copies};
  }

  // The copies of an event that arrived (their partitions), and whether it was executed.
  struct Copies {
    std::vector<int32_t> arrived;
    bool executed = false;
  };

  Result<Copies> ReadCopies(const CollectionEventId& id) {
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(SelectCollectionEventSql(o.group, id)));
    Copies out;
    for (const auto& r : rows) {
      out.arrived.push_back(std::stoi(r.at(0).value()));
      out.executed |= r.at(1).value_or("0") == "1";
    }
    return out;
  }

  Result<bool> Arrive(const PreparedRecord& r) {
    if (!r.collection_event || !r.event || !o.wait_for_copies || r.event->copies <= 1 || !ChangesTables(*r.event)) {
      return true;
    }
    M2M_RETURN_NOT_OK(NotKept());
    const KafkaMessage& m = r.message;
    PartitionId tp{m.topic, m.partition};
    if (!stored.count(tp)) M2M_RETURN_NOT_OK(Own({tp}).status());
    if (const auto& s = stored.at(tp); s && m.offset < *s) return true;  // applied already: Add skips it
    M2M_RETURN_NOT_OK(Commit());  // everything before the copy
    // The offsets check makes the record mean "the partition's stored offset is the copy's": all
    // before it is applied.
    CollectionEventCopy copy = CopyOf(*r.event, m);
    M2M_RETURN_NOT_OK(EnsureConnected());
    Status st = mysql->Begin();
    if (st.ok()) st = CheckOffsetsUnchanged({tp});
    if (st.ok()) st = mysql->Execute(InsertCopyArrivalSql(o.group, copy));
    const bool first_arrival = st.ok() && mysql->affected_rows() > 0;
    if (st.ok()) st = mysql->Commit();
    if (!st.ok()) {
      (void)mysql->Rollback();
      return st;
    }
    M2M_ASSIGN_OR_RETURN(Copies copies, ReadCopies(copy.id));
    std::vector<int32_t> missing;
    for (int32_t p = 0; p < r.event->copies; ++p) {
      if (std::find(copies.arrived.begin(), copies.arrived.end(), p) == copies.arrived.end()) missing.push_back(p);
    }
    if (copies.executed || missing.empty()) return true;
    if (first_arrival) {
      spdlog::info("apply {}: {} of {}.{} ({}@{}) waits until the other partitions of {} have reached their copies "
                   "(missing: {}); nothing after it is applied from {} meanwhile",
                   o.group, copy.event, r.event->db, r.event->collection, PartitionName(tp), m.offset, m.topic,
                   fmt::join(missing, ", "), PartitionName(tp));
    }
    return false;
  }

  // A drop or rename: after the batch before it has committed, its DDL (RENAME TABLE / DROP TABLE IF
  // EXISTS, or nothing when kept) runs alone, then a transaction moves the offset past it. One that
  // changes tables runs under the DDL lock, against the schema read there, once for all its copies:
  // the first copy to get there with every copy arrived (Arrive) runs it and records that in the
  // transaction that moves its offset; the others find the record and change nothing. Replayed after
  // a crash between the DDL and that commit, the schema read back no longer has the old tables, so
  // the mapper produces no statement the second time: the DDL is idempotent.
  Status AddCollectionEvent(const ChangeEvent& ev) {
    KafkaMessage m = std::move(pending.records.back());
    pending.records.pop_back();
    pending.bytes -= BytesOf(m);
    Status before = Commit();
    pending.bytes += BytesOf(m);
    pending.records.push_back(std::move(m));  // after a failure, kept behind the batch's records
    M2M_RETURN_NOT_OK(before);
    const KafkaMessage& message = pending.records.back();
    if (!ChangesTables(ev)) {
      M2M_RETURN_NOT_OK(RunCollectionEvent(ev, message));
      return Commit();
    }
    M2M_RETURN_NOT_OK(EnsureConnected());
    M2M_RETURN_NOT_OK(LockDdl());
    Status st = RunOnce(ev, message);
    if (st.ok()) st = Commit();
    UnlockDdl();
    return st;
  }

  // Under the DDL lock: the event unless another copy ran it, recorded with the offset.
  Status RunOnce(const ChangeEvent& ev, const KafkaMessage& message) {
    CollectionEventCopy copy = CopyOf(ev, message);
    M2M_ASSIGN_OR_RETURN(Copies copies, ReadCopies(copy.id));
    if (copies.executed) {
      spdlog::info("apply {}: {} of {}.{} ({}@{}): done already, by the copy of another partition", o.group,
                   copy.event, ev.db, ev.collection, PartitionName({message.topic, message.partition}), message.offset);
      Advance(message);
      return Status::OK();
    }
    if (o.wait_for_copies && static_cast<int32_t>(copies.arrived.size()) < ev.copies) {
      return Status::Internal("apply: a copy of a collection event was added before every copy arrived");
    }
    catalog_stale = true;  // the copies' other owners may have changed the tables since
    M2M_RETURN_NOT_OK(RunCollectionEvent(ev, message));
    pending.bookkeeping.push_back(MarkCollectionEventExecutedSql(o.group, copy));
    return Status::OK();
  }

  // Maps the event and runs its DDL, then takes it as applied (or quarantines it).
  Status RunCollectionEvent(const ChangeEvent& ev, const KafkaMessage& message) {
    M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
    auto mapped = mapper.Map(ev, catalog);
    if (!mapped.ok()) return Quarantine(message, mapped.status().message());
    if (mapped->collection) {
      spdlog::info("apply {}: {} ({}@{})", o.group, DescribeCollectionOp(*mapped->collection),
                   PartitionName({message.topic, message.partition}), message.offset);
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
    Advance(message);
    return Status::OK();
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
      M2M_ASSIGN_OR_RETURN(MappedEvent mapped, MapCurrentState(l.db, l.collection, l.key, std::move(doc)));
      pending.batch.Add(std::move(mapped), catalog);
    }
    return Status::OK();
  }

  // A document written whole as it is now, or its row deleted when `doc` is nullopt (gone).
  Result<MappedEvent> MapCurrentState(const std::string& db, const std::string& collection, const BsonDocument& key,
                                      std::optional<BsonDocument> doc) {
    ChangeEvent ev;
    ev.kind = doc ? EventKind::kReplace : EventKind::kDelete;
    ev.db = db;
    ev.collection = collection;
    ev.document_key = key;
    ev.after = std::move(doc);
    return mapper.Map(ev, catalog);
  }

  // Fails (retriable) unless the group's offsets of the batch's partitions are still what this
  // Applier last read or wrote: another owner may have applied them meanwhile.
  Status CheckOffsetsUnchanged(const std::vector<PartitionId>& ids) {
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(SelectOffsetsSql(o.group, ids, /*for_update=*/true)));
    std::map<PartitionId, int64_t> now;
    for (const auto& r : rows) now[{r.at(0).value(), std::stoi(r.at(1).value())}] = std::stoll(r.at(2).value());
    for (const PartitionId& tp : ids) {
      auto it = now.find(tp);
      std::optional<int64_t> value = it == now.end() ? std::nullopt : std::optional<int64_t>(it->second);
      auto known = stored.find(tp);
      if (known == stored.end() ? value.has_value() : known->second != value) {
        return Status(StatusCode::kMysql,
                      "the stored offset of " + PartitionName(tp) + " moved to " +
                          (value ? std::to_string(*value) : std::string("none")) +
                          ": another owner of it in group " + o.group + " applied it; rereading",
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
  static std::string BatchDocuments(const Pending& p) {
    constexpr size_t kNamed = 3;
    std::vector<std::string> labels;
    size_t count = 0;
    for (const Batch::Segment& seg : p.batch.segments()) {
      for (const DocumentOp& d : seg.documents) {
        if (count++ < kNamed) labels.push_back(d.label);
      }
    }
    std::string out = fmt::format("{}", fmt::join(labels, ", "));
    if (count > kNamed) out += fmt::format(" and {} more", count - kNamed);
    return out;
  }

  // Writes `p` (resolved: no lookups left), in one transaction after its DDL. Runs on the writer
  // thread for CommitInBackground: it touches only what that thread owns then (see `writing`). A
  // failed DDL leaves the catalog ahead of the server; every failure path reads it again (TakeRecords).
  Status WriteBatch(Pending& p) {
    const auto started = std::chrono::steady_clock::now();
    M2M_RETURN_NOT_OK(EnsureConnected());
    std::vector<std::string> rows;
    for (const Batch::Segment& seg : p.batch.segments()) {
      // DDL commits implicitly: it runs before the transaction. A crash after it leaves a schema the
      // catalog reads back at restart, so the mapper does not emit it again.
      M2M_RETURN_NOT_OK(RunSchemaChanges(seg.schema_changes));
      M2M_ASSIGN_OR_RETURN(SegmentSql sql, RenderSegment(seg, o.sql));
      for (std::string& s : sql.rows) rows.push_back(std::move(s));
    }
    M2M_RETURN_NOT_OK(mysql->Begin());
    std::vector<PartitionId> ids;
    for (const auto& [tp, next] : p.next) ids.push_back(tp);
    if (!ids.empty()) M2M_RETURN_NOT_OK(CheckOffsetsUnchanged(ids));
    Status st = ExecuteRows(rows);
    if (st.native_code() == kPacketTooLarge) st = st.WithContext(BatchDocuments(p));
    M2M_RETURN_NOT_OK(st);
    M2M_RETURN_NOT_OK(ExecuteRows(InsertQuarantineSql(o.group, p.quarantine, o.sql.max_statement_bytes)));
    for (const std::string& s : p.bookkeeping) M2M_RETURN_NOT_OK(mysql->Execute(s));
    if (!ids.empty()) M2M_RETURN_NOT_OK(mysql->Execute(UpsertOffsetsSql(o.group, p.next, p.applied)));
    M2M_RETURN_NOT_OK(mysql->Commit());
    p.committed_at = std::chrono::system_clock::now();
    p.write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return Status::OK();
  }

  // Takes `p`, committed, as applied; it is emptied.
  void Committed(Pending& p) {
    for (const auto& [tp, next] : p.next) stored[tp] = next;
    stats.events += p.events;
    stats.batches++;
    stats.quarantined += static_cast<int64_t>(p.quarantine.size());
    for (const auto& [tp, applied] : p.applied) {
      stats.events_by_topic.Add({tp.first}, applied.events);
      stats.events_by_partition.Add({tp.first, std::to_string(tp.second)}, applied.events);
    }
    stats.RecordBatch(p.events, p.write_seconds, p.event_ms, p.committed_at);
    if (!p.records.empty()) stats.last_event_ms = p.records.back().timestamp_ms;
    std::map<PartitionId, int64_t> next = std::move(p.next);
    p = Pending{};
    if (on_commit) on_commit(next);
  }

  // The batch's records, taken out of it; the rest of the batch is dropped (Map ran ahead of the
  // server, so the catalog is read again).
  std::vector<KafkaMessage> TakeRecords() {
    std::vector<KafkaMessage> records = std::move(pending.records);
    if (pending.events > 0 || !pending.batch.empty()) catalog_stale = true;
    pending = Pending{};
    return records;
  }

  // Adds `records` to the (empty) batch again, in order; on failure the ones not added yet are kept
  // behind the batch's for Redo.
  Status AddAgain(std::vector<KafkaMessage> records, bool commit_each) {
    for (size_t i = 0; i < records.size(); ++i) {
      Status st = AddRecord(std::move(records[i]));
      if (st.ok() && commit_each) st = Commit();
      if (!st.ok()) {
        Keep();
        for (size_t j = i + 1; j < records.size(); ++j) pending.records.push_back(std::move(records[j]));
        return st;
      }
    }
    return Status::OK();
  }

  // After a retriable failure: nothing of the batch is in MySQL; only its records stay, for Redo.
  void Keep() {
    std::vector<KafkaMessage> records = TakeRecords();
    for (const KafkaMessage& m : records) pending.bytes += BytesOf(m);
    pending.records = std::move(records);
    pending.kept = true;
  }

  Status Commit() {
    M2M_RETURN_NOT_OK(Sync());
    M2M_RETURN_NOT_OK(NotKept());
    return Write(std::nullopt);
  }

  // Writes the batch being built and deals with a failure as the protocol says (map again, one event
  // at a time, or keep its records); `first`: the outcome of a write of it made already.
  Status Write(std::optional<Status> first) {
    for (int remaps = 0; pending.events > 0; ++remaps) {
      Status st;
      if (first) {
        st = std::move(*first);
        first.reset();
      } else {
        schema_moved = false;
        st = lookup ? ResolveLookups() : Status::OK();
        if (st.ok()) st = WriteBatch(pending);
      }
      if (st.ok()) {
        Committed(pending);
        return Status::OK();
      }
      if (mysql) (void)mysql->Rollback();
      if (schema_moved && remaps < kRemaps) {
        spdlog::info("apply {}: {}", o.group, st.message());
        M2M_RETURN_NOT_OK(AddAgain(TakeRecords(), /*commit_each=*/false));
        continue;
      }
      if (!IsEventError(st)) {
        Keep();
        return st;
      }
      if (pending.events > 1) {
        spdlog::warn("apply {}: a batch of {} events failed ({}); redoing it one event at a time", o.group,
                     pending.events, st.ToString());
        return AddAgain(TakeRecords(), /*commit_each=*/true);
      }
      return QuarantineAlone(st);
    }
    return Status::OK();
  }

  // One event the server refuses: quarantined in a transaction of its own.
  Status QuarantineAlone(const Status& refusal) {
    QuarantinedEvent bad = Describe(pending.records.back(), refusal.message());
    spdlog::warn("apply {}: quarantining {}@{}: {}", o.group, PartitionName({bad.topic, bad.partition}), bad.offset,
                 Head(bad.error));
    Pending only;
    only.next = std::move(pending.next);
    only.applied = std::move(pending.applied);
    only.events = pending.events;
    only.records = std::move(pending.records);
    only.bytes = pending.bytes;
    only.event_ms = std::move(pending.event_ms);
    only.quarantine.push_back(std::move(bad));
    catalog_stale = true;
    pending = std::move(only);
    Status st = ConnectServer();  // some refusals (a packet too large) close the connection
    if (st.ok()) st = WriteBatch(pending);
    if (!st.ok()) {
      if (mysql) (void)mysql->Rollback();
      Keep();
      return st;
    }
    Committed(pending);
    return Status::OK();
  }

  Status CommitInBackground() {
    M2M_RETURN_NOT_OK(Sync());
    M2M_RETURN_NOT_OK(NotKept());
    if (pending.events == 0) return Status::OK();
    // Lookups map documents, and a stale catalog must be read before the next batch is mapped: both
    // belong to this thread, so such a batch is written here.
    if (!pending.lookups.empty() || catalog_stale || !mysql) return Write(std::nullopt);
    schema_moved = false;
    inflight = std::move(pending);
    pending = Pending{};
    writing = true;
    writer.Start([this] { return WriteBatch(inflight); });
    return Status::OK();
  }

  // Ends the background write, if any: takes it as committed, or on failure deals with it as Commit
  // would, with the batch built meanwhile (mapped against a catalog that counted on the failed one)
  // taken apart and added again behind it, or kept behind its records.
  Status Sync() {
    if (!writing) return Status::OK();
    Status st = writer.Wait();
    writing = false;
    if (st.ok()) {
      Committed(inflight);
      return Status::OK();
    }
    std::vector<KafkaMessage> later = TakeRecords();
    pending = std::move(inflight);
    inflight = Pending{};
    catalog_stale = true;
    Status handled = Write(std::move(st));
    if (!handled.ok()) {
      if (!pending.kept) Keep();
      for (KafkaMessage& m : later) {
        pending.bytes += BytesOf(m);
        pending.records.push_back(std::move(m));
      }
      return handled;
    }
    return AddAgain(std::move(later), /*commit_each=*/false);
  }

  // Ends the background write, if any, without redoing it when it failed: for a host that is about
  // to start its partitions again from their stored offsets.
  void Drain() {
    if (!writing) return;
    Status st = writer.Wait();
    writing = false;
    if (st.ok()) {
      Committed(inflight);
      return;
    }
    if (mysql) (void)mysql->Rollback();
    inflight = Pending{};
    catalog_stale = true;
  }

  Status Redo() {
    (void)Sync();  // a failed background write keeps its records ahead of the batch's
    std::vector<KafkaMessage> records = TakeRecords();
    Status st = ConnectServer();
    std::vector<PartitionId> ids;
    for (const auto& [tp, next] : stored) ids.push_back(tp);
    if (st.ok()) st = Own(ids).status();
    if (!st.ok()) {
      pending.records = std::move(records);
      Keep();
      return st;
    }
    return AddAgain(std::move(records), /*commit_each=*/false);
  }

  Status WriteCurrentState(const std::string& db, const std::string& collection, const BsonDocument& key,
                           const std::optional<BsonDocument>& doc, std::vector<std::string> also) {
    M2M_RETURN_NOT_OK(NotKept());
    if (pending.events > 0 || !pending.records.empty()) {
      return Status::Invalid("apply: WriteCurrentState needs an empty batch; commit or abandon it first");
    }
    M2M_RETURN_NOT_OK(Sync());
    for (int remaps = 0;; ++remaps) {
      M2M_RETURN_NOT_OK(ReloadCatalogIfStale());
      auto mapped = MapCurrentState(db, collection, key, doc);
      if (!mapped.ok()) {
        catalog_stale = true;
        return mapped.status();
      }
      pending.batch.Add(std::move(*mapped), catalog);
      pending.bookkeeping = also;
      schema_moved = false;
      Status st = WriteBatch(pending);
      if (st.ok()) {
        pending = Pending{};
        return Status::OK();
      }
      if (mysql) (void)mysql->Rollback();
      catalog_stale = true;
      pending = Pending{};
      if (!schema_moved || remaps >= kRemaps) return st;
      spdlog::info("apply {}: {}", o.group, st.message());
    }
  }
};

Applier::Applier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Applier::~Applier() = default;

Result<std::unique_ptr<Applier>> Applier::Make(ApplierOptions options, ApplyStats* stats) {
  M2M_RETURN_NOT_OK(options.Validate());
  M2M_ASSIGN_OR_RETURN(Mapper mapper, Mapper::Make(options.mapping));
  auto impl = std::make_unique<Impl>(std::move(options), *stats, std::move(mapper));
  if (impl->o.mongo) {
    M2M_ASSIGN_OR_RETURN(impl->lookup, DocumentLookup::Connect(*impl->o.mongo));
  }
  return std::unique_ptr<Applier>(new Applier(std::move(impl)));
}

Status Applier::Connect() {
  Abandon();
  return impl_->ConnectServer();
}

Result<std::map<PartitionId, std::optional<int64_t>>> Applier::Own(const std::vector<PartitionId>& partitions) {
  return impl_->Own(partitions);
}

void Applier::Disown() {
  Abandon();
  impl_->stored.clear();
}

Result<PreparedRecord> Applier::Prepare(KafkaMessage&& message) { return impl_->Prepare(std::move(message)); }
Status Applier::Add(PreparedRecord record) { return impl_->Add(std::move(record)); }
Status Applier::Commit() { return impl_->Commit(); }
Status Applier::Redo() { return impl_->Redo(); }
void Applier::Abandon() {
  impl_->Drain();
  impl_->TakeRecords();
}
Status Applier::CommitInBackground() { return impl_->CommitInBackground(); }
Status Applier::Sync() { return impl_->Sync(); }
bool Applier::writing() const { return impl_->writing; }
bool Applier::written() const { return impl_->writing && impl_->writer.done(); }
Result<bool> Applier::Arrive(const PreparedRecord& record) { return impl_->Arrive(record); }
Status Applier::WriteCurrentState(const std::string& db, const std::string& collection, const BsonDocument& key,
                                  const std::optional<BsonDocument>& doc, std::vector<std::string> also) {
  return impl_->WriteCurrentState(db, collection, key, doc, std::move(also));
}
int Applier::pending_events() const { return impl_->pending.events; }
size_t Applier::pending_bytes() const { return impl_->pending.bytes; }
void Applier::OnCommit(CommitListener listener) { impl_->on_commit = std::move(listener); }
const ApplierOptions& Applier::options() const { return impl_->o; }
bool Applier::connected() const { return impl_->mysql != nullptr; }

}  // namespace m2m::apply
