// The initial snapshot: a copy of every document of the captured collections, published as read
// events (op "r") before the change stream continues from the point recorded before the copy began.
//
// A collection is cut into chunks of about `chunk_size` documents by _id. MongoDB compares values of
// different BSON types only within a type class when a query says {$gte, $lt} ("type bracketing"),
// so chunks are planned per type class: {_id: {$type: <class>, $gte: lo, $lt: hi}}. Together the
// chunks of a plan cover every document exactly once, whatever mix of _id types the collection has.
// Each finished chunk is committed with the plan's progress in one Kafka transaction (capture.h), so
// a restart continues at the next unfinished chunk.
//
// Thread safety: the free functions use the client they are given; one client per thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "change_stream_reader.h"
#include "m2m/bson_document.h"
#include "m2m/event_codec.h"
#include "m2m/mongo_client.h"
#include "m2m/status.h"

namespace m2m::capture {

struct SnapshotOptions {
  // Documents per chunk; each chunk is one Kafka transaction. Default: 5000
  int chunk_size = 5000;
  // Chunks read from MongoDB at the same time (each reader has its own connection). Default: 2
  int parallelism = 2;

  Status Validate() const;
};

// The class of the _id types no range can cover: MongoDB refuses a regular expression as a bound
// ($gte: /re/ is an error), and JavaScript, symbol, DBPointer and undefined _ids are as rare as they
// are deprecated. Their documents form one chunk without bounds, read by type.
inline constexpr const char* kUnrangedClass = "unranged";

// Documents of one _id type class whose _id lies in [lo, hi); an absent bound is open.
struct SnapshotChunk {
  std::string type_class;            // a $type alias: "number", "string", "objectId", ..., or kUnrangedClass
  std::optional<BsonDocument> lo;    // {"v": <_id>}
  std::optional<BsonDocument> hi;    // {"v": <_id>}
};

// The plan and progress of one collection's snapshot; kept in the checkpoint topic in two parts,
// so that what is rewritten after every chunk stays small however many chunks there are:
// - the plan's chunks, in pages of about kPlanPageBytes (PlanPages), written once when planned;
// - the progress record (ProgressJson): counts, and the chunks done as a frontier (every chunk before
//   it) plus the few done beyond it (at most the chunks in flight, about twice the parallelism).
// Version 1 records, which held the whole plan and a flag per chunk, are still read.
struct CollectionSnapshot {
  static constexpr size_t kPlanPageBytes = 256 * 1024;

  Namespace ns;
  std::vector<SnapshotChunk> chunks;  // empty when only the progress was read (FromJson)
  std::vector<bool> done;             // per chunk
  int64_t documents = 0;              // counted when planned
  int64_t copied = 0;                 // documents of the finished chunks

  bool complete() const;
  int64_t chunks_done() const;
  std::string ProgressJson() const;
  std::vector<std::string> PlanPages() const;
  // From a progress record; `page(i)` gives plan page i (nullopt when it is missing). Without
  // `page`, or once the snapshot is complete, the chunks are not read: `done` still says how many.
  static Result<CollectionSnapshot> FromJson(
      const std::string& progress, const std::function<std::optional<std::string>(size_t)>& page = nullptr);
};

// The collections a stream of this scope covers, system collections and databases left out.
Result<std::vector<Namespace>> ListCollections(MongoClient& client, const StreamOptions& stream);

// Cuts the _ids of a collection, fed in the server's _id order, into the chunks of a plan: a chunk
// holds at most `chunk_size` _ids of one type class. The classes may come in any order (each keeps
// its own open chunk), but within a class the _ids must be ascending, as an _id-sorted scan gives.
// Pure logic, no server: PlanSnapshot feeds it from MongoDB.
class ChunkPlanner {
 public:
  explicit ChunkPlanner(int chunk_size) : chunk_size_(chunk_size) {}
  // `id` is an iterator on an _id value. An _id of a type no range covers (regex, JavaScript,
  // symbol, DBPointer, undefined) is counted in the kUnrangedClass chunk.
  void Add(const bson_iter_t& id);
  // `n` documents whose _id no range covers, counted without reading them.
  void AddUnranged(int64_t n);
  // The chunks, classes in MongoDB's sort order; together they cover every _id added exactly once.
  std::vector<SnapshotChunk> Finish();
  int64_t documents() const { return documents_; }

 private:
  struct ClassChunks {
    std::vector<SnapshotChunk> closed;
    std::optional<BsonDocument> open_lo;
    int64_t in_open = 0;
  };
  int chunk_size_;
  int64_t documents_ = 0;
  int64_t unranged_ = 0;
  std::map<int, ClassChunks> classes_;  // by index into the type-class table
};

// Whether a range can cover an _id of this type (else its document is in the kUnrangedClass chunk).
bool RangeCovers(bson_type_t type);

// Appends the chunk's filter, {_id: …}, to `filter`.
void AppendChunkFilter(bson_t* filter, const SnapshotChunk& chunk);

// Plans the chunks of one collection with one keys-only pass over the _ids a range can cover, in
// index order, and a count of the others.
Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size);

// The documents of one chunk, in _id order, each handed to `each` as it arrives; `each` returning
// false stops the read (OK).
Status ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk,
                 const std::function<bool(BsonDocument)>& each);
// The same, all at once.
Result<std::vector<BsonDocument>> ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk);

// A document of a chunk as its reader made it ready to publish: the read event's Kafka record, or,
// when the document cannot be published, the document itself and why (it goes to the dead-letter
// topic, whole).
struct SnapshotRecord {
  std::string key, value;                // the read event
  std::optional<BsonDocument> rejected;  // the document no read event can carry
  std::string why;                       // set with `rejected`

  // The bytes it holds, as ChunkQueue counts them.
  int64_t bytes() const {
    return static_cast<int64_t>(key.size() + value.size() + why.size() + (rejected ? rejected->get()->len : 0));
  }
};

// Between the snapshot's readers and its publisher: hands out chunks to read and carries their
// documents, made into records by the readers, bounded in bytes whatever the chunks' sizes (a chunk
// is a count of documents, and a document may be 16 MiB). Chunks are published one at a time, in
// order; the one being published (the current chunk) may hold up to half of `max_bytes`, the
// chunks read ahead of it the other half together. A reader whose record does not fit waits for
// the publisher. A record larger than half still goes, alone, once its chunk is current and empty:
// every record passes, and the records held never exceed `max_bytes` or that one record. Readers
// stay within `window` chunks of the current one.
//
// Thread safety: every member may be called from any thread; one publisher thread calls Next and
// Published.
class ChunkQueue {
 public:
  ChunkQueue(size_t chunks, size_t window, int64_t max_bytes);

  // Readers. The next chunk to read, waiting while `window` chunks are taken and unpublished;
  // nullopt when every chunk is taken, or after Abandon.
  std::optional<size_t> Take();
  // Adds a record of chunk `chunk` (taken), waiting for room; false after Abandon.
  bool Put(size_t chunk, SnapshotRecord record);
  // Chunk `chunk` has been read whole, or its read failed with `status`.
  void Finish(size_t chunk, Status status);

  // The publisher. What the current chunk has next, waiting at most `timeout`.
  struct Item {
    enum Kind { kRecord, kEnd, kNothingYet } kind = kNothingYet;
    std::optional<SnapshotRecord> record;  // kRecord
    Status status;                         // kEnd: how the read ended
  };
  Item Next(std::chrono::milliseconds timeout);
  // Whether Next has something now (a record or the end of the current chunk) without waiting.
  bool Ready() const;
  // The current chunk (which gave kEnd) is handed to the producer; the next one becomes current.
  void Published();

  // Wakes and stops every reader.
  void Abandon();
  // Records held now, in bytes.
  int64_t bytes() const;

 private:
  struct Chunk {
    std::deque<SnapshotRecord> records;
    int64_t bytes = 0;
    bool finished = false;
    Status status;
  };
  bool Fits(size_t chunk, int64_t size) const;  // mu_ held
  bool CurrentReady() const;                      // mu_ held

  const size_t chunks_, window_;
  const int64_t half_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_:
  std::map<size_t, Chunk> taken_;  // taken and not published, by position
  size_t next_ = 0;                // the next chunk to hand out
  size_t current_ = 0;             // the chunk being published
  int64_t ahead_bytes_ = 0;        // of the chunks after the current one
  bool abandoned_ = false;
};

}  // namespace m2m::capture
