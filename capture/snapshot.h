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

// The plan and progress of one collection's snapshot; kept in the checkpoint topic.
struct CollectionSnapshot {
  Namespace ns;
  std::vector<SnapshotChunk> chunks;
  std::vector<bool> done;            // per chunk
  int64_t documents = 0;             // counted when planned
  int64_t copied = 0;                // documents of the finished chunks

  bool complete() const;
  std::string ToJson() const;
  static Result<CollectionSnapshot> FromJson(const std::string& json);
};

// The collections a stream of this scope covers, system collections and databases left out.
Result<std::vector<Namespace>> ListCollections(MongoClient& client, const StreamOptions& stream);

// Plans the chunks of one collection with one keys-only pass over its _id index.
Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size);

// The documents of one chunk, in _id order.
Result<std::vector<BsonDocument>> ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk);

}  // namespace m2m::capture
