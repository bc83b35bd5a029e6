// ChangeEvent: one change to one MongoDB document or collection, as capture publishes it to Kafka
// and as apply (and the Spark job) consume it. The wire format is JSON, documented and versioned in
// docs/events.md; this struct is its in-memory form.
//
// Thread safety: a value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "m2m/bson_document.h"

namespace m2m {

enum class EventKind {
  kRead,          // a document copied by the snapshot (Debezium op "r")
  kInsert,        // op "c"
  kUpdate,        // op "u", with updateDescription and, when available, the full document
  kReplace,       // op "u", whole document replaced (no updateDescription)
  kDelete,        // op "d"
  kDrop,          // collection dropped
  kRename,        // collection renamed; see rename_to_*
  kDropDatabase,  // database dropped
  kInvalidate,    // the change stream was invalidated (after drop/rename of a watched collection)
};

struct TruncatedArray {
  std::string field;  // dotted path
  int64_t new_size = 0;
};

// MongoDB's updateDescription: what an update changed, without the rest of the document.
struct UpdateDescription {
  BsonDocument updated_fields;               // dotted paths -> new values
  std::vector<std::string> removed_fields;   // dotted paths
  std::vector<TruncatedArray> truncated_arrays;
  // MongoDB 6.1+ (showExpandedEvents): for each updatedFields/removedFields path that is ambiguous
  // (a field name containing "." or a numeric field name that is not an array index), the path as
  // an array of its components (strings and array indexes). Empty when none or not sent.
  BsonDocument disambiguated_paths;
};

struct ChangeEvent {
  EventKind kind = EventKind::kInsert;
  std::string db;
  std::string collection;
  // {"_id": <value>} plus the shard key fields of sharded collections. Empty for collection events.
  BsonDocument document_key;
  // The document after the change: inserts, reads, replaces, and updates when a post-image or
  // updateLookup supplied it. nullopt when unknown (update without lookup, or lookup found nothing).
  std::optional<BsonDocument> after;
  // The document before the change, when pre-images are enabled (fullDocumentBeforeChange).
  std::optional<BsonDocument> before;
  // Updates only.
  std::optional<UpdateDescription> update;
  // Updates only: capture asked MongoDB to look the document up (fullDocument: updateLookup) and
  // MongoDB found none, so the document was deleted after this update and its delete follows in the
  // stream. Capture sets it (FullDocumentIsNull); under other fullDocument modes a null means only
  // that no post-image was kept, which says nothing about the document.
  bool document_gone = false;
  // Renames only: the new namespace.
  std::string rename_to_db;
  std::string rename_to_collection;
  // Drops and renames: how many partitions capture sent a copy of the event to (every partition of
  // the topic, docs/events.md); apply applies the event once all of them have reached their copy.
  // 0: not known (events of earlier versions).
  int32_t copies = 0;
  // The change stream's resume token, as canonical Extended JSON; opaque. Empty for snapshot reads.
  std::string resume_token;
  // The operation's cluster time (the oplog timestamp): seconds and increment.
  uint32_t cluster_time_s = 0;
  uint32_t cluster_time_i = 0;
  // Wall clock of the operation in ms since the epoch (MongoDB 6.0+ wallTime, else cluster time).
  int64_t wall_time_ms = 0;
  // Transaction the change belongs to, when it was made in one: lsid (canonical EJSON) and txnNumber.
  std::optional<std::string> txn_lsid;
  std::optional<int64_t> txn_number;
};

}  // namespace m2m
