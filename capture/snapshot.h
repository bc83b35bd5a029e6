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

#include <cstdint>
#include <functional>
#include <map>
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

// Documents of one _id type class whose _id lies in [lo, hi); an absent bound is open.
struct SnapshotChunk {
  std::string type_class;            // a $type alias: "number", "string", "objectId", ...
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
  // `id` is an iterator on an _id value. An _id of a type no class covers (symbol, JavaScript,
  // regex, undefined, DBPointer) is an error showing it: a range scan would silently skip it.
  Status Add(const bson_iter_t& id);
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
  std::map<int, ClassChunks> classes_;  // by index into the type-class table
};

// Plans the chunks of one collection with one keys-only pass over its _id index.
Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size);

// The documents of one chunk, in _id order.
Result<std::vector<BsonDocument>> ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk);

}  // namespace m2m::capture
