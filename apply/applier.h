// The apply transaction, apart from where the records come from (docs/apply.md): Kafka records of
// some partitions into MySQL rows, exactly once. It has two hosts: the native daemon (apply.h), which
// consumes with librdkafka, and the Spark job's executors (range_applier.h, through the Python
// extension in spark/), which get the records from Spark's Kafka source. Each mapping rule and the
// transaction below exist here only.
//
// Protocol. A host owns partitions (Own). For each, the next offset to apply is kept in the MySQL
// table _m2m_offsets (bookkeeping.h), under the host's group, and written in the same MySQL
// transaction as the rows the events produce, so the rows and the positions never disagree. Records
// below a partition's stored offset were applied already and are skipped. Each transaction first
// locks the rows of its partitions and checks they still hold what this Applier last read or wrote:
// another owner (a member after a rebalance it did not notice in time, a Spark task retried or run
// twice) may have applied them meanwhile; then the transaction fails, retriable, and the host redoes
// its records from the stored offsets (skipping what the other owner applied).
//
// Per batch: decode, map (the Mapper grows the catalog and returns DDL), coalesce per key (Batch),
// resolve updates that need the full document (from MongoDB when configured, else quarantine), run
// the DDL under a lock shared by every writer of the database (it commits implicitly, so before
// BEGIN; every statement is idempotent against the schema read back after a crash), then BEGIN, the
// row statements, the quarantined events, the offsets, COMMIT. A collection event (drop, rename)
// commits the batch before it and runs alone. Capture copies it to every partition of its topic, and
// those partitions may be applied by different processes: one that changes tables runs once, when
// every partition has reached its copy (Arrive), and later copies change nothing (docs/apply.md,
// "Collection events"). The Applier keeps the records of the batch in flight:
// a batch MySQL refuses because of one event is redone one event at a time, and that event alone is
// quarantined; a batch whose DDL meets a schema another writer changed is mapped again.
//
// Order across collections (barrier.h) is the host's: Prepare says which records are barriers.
//
// Thread safety: an Applier is used by one thread at a time (the host's); CommitInBackground's writer
// thread is the Applier's own and touches nothing the host sees until Sync. ApplyStats is read from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "barrier.h"
#include "bookkeeping.h"
#include "m2m/change_event.h"
#include "m2m/kafka_client.h"
#include "m2m/mapping.h"
#include "m2m/metrics.h"
#include "m2m/mongo_client.h"
#include "m2m/mysql_client.h"
#include "m2m/sql_writer.h"
#include "m2m/status.h"

namespace m2m::apply {

struct ApplierOptions {
  // The key of this host's rows in _m2m_offsets: one position per group and partition.
  // Default: mongo2mysql-apply
  std::string group = "mongo2mysql-apply";
  // The MySQL server and database; the database is created when missing.
  MysqlOptions mysql;
  // The document-to-table mapping (docs/mapping.md). Default: automatic for every collection
  MappingConfig mapping;
  // Where updates whose delta cannot be applied column by column fetch their document. Without it such
  // events are quarantined (capture's default --full-document updateLookup makes them rare).
  // Default: none
  std::optional<MongoOptions> mongo;
  // SQL rendering (statement size, ALGORITHM=INSTANT). Default: SqlOptions defaults
  SqlOptions sql;
  // Whether a drop or rename that changes tables waits until every partition of its topic has
  // reached its copy (Arrive). A host whose processes may own different partitions of a topic needs
  // it (the native daemon); the Spark engine's driver orders the copies of a batch itself
  // (docs/spark.md), and its tasks cannot wait for one another. Without it the first copy runs the
  // event and the later ones change nothing. Default: true
  bool wait_for_copies = true;

  Status Validate() const;
};

// Counters for progress output and metrics; written by the host's thread, read from any thread.
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
  LabelledValues events_by_topic;      // {topic}: committed events
  LabelledValues events_by_partition;  // {topic, partition}: committed events
  LabelledValues lag_by_partition;     // {topic, partition}: lag_events of each started partition owned now
  // Seconds from each change event's MongoDB wall time (cluster time before 6.0) to the MySQL commit
  // that applied it; snapshot reads, tombstones and undecodable records have none.
  prometheus::Histogram event_age{kSecondsBuckets};
  prometheus::Histogram batch_events{kBatchEventsBuckets};  // events per committed MySQL transaction
  prometheus::Histogram batch_seconds{kSecondsBuckets};     // writing a batch: DDL, lookups, statements, COMMIT

  // Counts a batch committed at `committed_at`: `events` records written in `seconds`; `event_ms` the
  // wall times (ms since the epoch) of its change events. A wall time ahead of the commit (the
  // clocks of MongoDB and apply's host disagree) counts as age 0.
  void RecordBatch(int events, double seconds, const std::vector<int64_t>& event_ms,
                   std::chrono::system_clock::time_point committed_at);
  // Takes the lag of each partition (offsets to its end; apply_metrics.cc) and their sum.
  void RecordLag(const std::map<PartitionId, int64_t>& by_partition);
  // Start-up is done: MySQL connected with the bookkeeping tables in place, the consumer subscribed, a
  // first step made (systemd's READY=1). Not the group's assignment: a topic pattern may match no
  // topic until capture makes one, and apply is running all the same.
  std::atomic<bool> ready{false};
};

// A record decoded, and what the host needs to order it.
struct PreparedRecord {
  KafkaMessage message;
  std::optional<ChangeEvent> event;  // none: a tombstone (nothing to apply), or `error`
  std::string error;                 // not empty: the record cannot be decoded; Add quarantines it
  bool collection_event = false;     // a drop or rename: committed alone
  // An event whose effect depends on other collections' tables (barrier.h): a collection event, or
  // the first event of a collection without tables, as of the catalog when prepared.
  bool barrier = false;
  OrderKey key;  // where it stands in MongoDB's order
};

class Applier {
 public:
  static Result<std::unique_ptr<Applier>> Make(ApplierOptions options, ApplyStats* stats);
  ~Applier();

  // (Re)connects to MySQL, creates the database and the bookkeeping tables when missing, and adopts
  // the server's limits. Forgets the batch in flight and the catalog (read again when needed).
  Status Connect();

  // Reads the stored offsets of `partitions` and takes them as owned (in addition to the others):
  // Add skips their records below those offsets, and each commit checks them unchanged. The schema
  // is read again before the next record (their previous owner may have changed their tables).
  // Returns each one's stored offset; none when nothing of it was applied yet.
  Result<std::map<PartitionId, std::optional<int64_t>>> Own(const std::vector<PartitionId>& partitions);
  // Owns nothing any more; the batch in flight is abandoned.
  void Disown();

  // Decodes a record and classifies it against the current catalog (read from the server first when
  // stale). Fails only when the server cannot be read, and then leaves `message` as it was; an
  // undecodable record is prepared with `error`.
  Result<PreparedRecord> Prepare(KafkaMessage&& message);

  // Whether a prepared record may be added now. False only for a copy of a drop or rename that
  // changes tables (with options().wait_for_copies, and more than one copy) while other partitions
  // have not reached their copies yet: applying it now would let their older events land after it
  // (e.g. in the tables of a new collection of the same name, which its DDL would then drop). The
  // host then holds the partition at the copy, applies nothing after it, and asks again later.
  // Commits the batch in flight first, then records in MySQL (offsets checked) that this partition
  // has reached the copy, so the copies' owners meet there whichever processes they are, through
  // crashes and rebalances. True at once, without I/O, for every other record. May fail as Commit.
  Result<bool> Arrive(const PreparedRecord& record);

  // Adds a prepared record to the batch in flight; a record below its partition's stored offset is
  // skipped. A collection event commits the batch before it, runs its DDL and commits its offset, so
  // it may fail as Commit does.
  Status Add(PreparedRecord record);

  // Commits the batch in flight (see the protocol above). An event MySQL refuses is quarantined and
  // the rest applied. On a retriable failure (connection lost, deadlock, the offsets moved) nothing of
  // the batch is in MySQL and its records are kept: Redo adds them again, or Abandon drops them.
  Status Commit();

  // Commit, pipelined: a thread of the Applier's writes the batch while the host adds the next, so
  // decoding and mapping overlap MySQL's work. One batch is written at a time: this first syncs the
  // one before. Every call that needs the MySQL connection or changes the owned offsets (Commit,
  // Own, Arrive, Redo, a collection event's Add, a stale catalog's read) syncs first; so does Sync.
  // A batch that needs lookups, or a catalog read first, is written at once, as Commit would.
  Status CommitInBackground();
  // Waits for the batch written in the background, if any. Its outcome is Commit's: on a failure
  // dealt with as Commit would (quarantine, remap) the batch being built is added again behind it; on
  // a retriable one the records of both are kept, in order, for Redo.
  Status Sync();
  // A batch was handed to CommitInBackground and not synced yet; written: and its write has ended.
  bool writing() const;
  bool written() const;

  // After a retriable failure: reconnects, reads the owned partitions' stored offsets again, and adds
  // the kept records again (skipping what another owner applied). Then Commit.
  Status Redo();

  // Drops the batch in flight and the records kept; nothing of them is in MySQL. A background write
  // still running is waited for first: kept when it committed, dropped with the rest when it failed.
  void Abandon();

  // Writes a document as MongoDB holds it now (`doc`, read just now by `key`), or deletes its row
  // when it is gone (nullopt), as the lookup of an update does, outside any partition's order, in one
  // transaction with `also` (statements of the caller's bookkeeping); moves no offset. For the
  // quarantine replay (quarantine.h). Needs an empty batch. Fails without writing anything on a
  // mapping error or a MySQL error.
  Status WriteCurrentState(const std::string& db, const std::string& collection, const BsonDocument& key,
                           const std::optional<BsonDocument>& doc, std::vector<std::string> also);

  int pending_events() const;
  // The bytes of the records in the batch in flight (keys and values).
  size_t pending_bytes() const;

  // Called after every commit with the next offset of each partition the transaction moved.
  using CommitListener = std::function<void(const std::map<PartitionId, int64_t>&)>;

  void OnCommit(CommitListener listener);

  const ApplierOptions& options() const;
  bool connected() const;

 private:
  struct Impl;
  explicit Applier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2m::apply
