// The event codec: raw MongoDB change-stream events -> ChangeEvent, and ChangeEvent <-> the Kafka
// message format documented in docs/events.md (Debezium MongoDB 2.x shape plus an "m2m" block).
//
// Contract:
// - FromChangeStreamDocument accepts what MongoDB 5.0-8.0 (and the local stand-in) sends on a change
//   stream; the caller reassembles $changeStreamSplitLargeEvent fragments first (SplitEventAssembler).
// - EncodeKey/EncodeValue never fail: every ChangeEvent has a representation. Documents travel as
//   canonical Extended JSON, so DecodeEvent(EncodeKey(e), EncodeValue(e, o)) gives back `e` with every
//   BSON value bit-identical (bson_equal), whatever the types.
// - EncodeValue does not enforce a size limit: the caller compares the returned string's size with the
//   broker's max message size and dead-letters or fails as its policy says.
// - DecodeEvent reads our format and the Debezium MongoDB connector's (JSON converter, with or without
//   the {"schema", "payload"} envelope).
// - No function throws; errors are Status values whose message names the offending field.
//
// Thread safety: the free functions are pure and may be called from any thread concurrently. A
// SplitEventAssembler is a value owned by one thread (the one reading the change stream).
#pragma once

#include <bson/bson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "m2m/bson_document.h"
#include "m2m/change_event.h"
#include "m2m/status.h"

namespace m2m {

// The version written as "m2m.v" and accepted by DecodeEvent; bumped on incompatible change.
inline constexpr int kEventFormatVersion = 1;

// A database and collection name.
struct Namespace {
  std::string db;
  std::string collection;
};

// ---------------------------------------------------------------------------------------------
// MongoDB -> ChangeEvent

// True for the operationType values FromChangeStreamDocument converts: insert, update, replace,
// delete, drop, rename, dropDatabase, invalidate. Any other type (create, createIndexes, dropIndexes,
// modify, shardCollection, reshardCollection, refineCollectionShardKey, ... which MongoDB sends only
// with showExpandedEvents, and types added by future servers) makes FromChangeStreamDocument return
// kInvalidArgument "unsupported operationType \"<type>\"". Capture checks this first to tell "a type
// we do not carry" (skip it and move the checkpoint past it, or dead-letter it) from a malformed event.
bool IsSupportedOperationType(std::string_view operation_type);

// Converts one raw change-stream event (after split fragments are merged) to a ChangeEvent.
// `fallback` gives db/collection when the event has no `ns` (a collection-level stream on the
// stand-in); an `ns` in the event wins. Notes on shapes:
// - update with updateDescription -> kUpdate with `update` set; `after` is fullDocument when present
//   (updateLookup / post-image) and not null.
// - update without updateDescription (mongo-java-server's own oplog) -> kUpdate with `update` unset;
//   then fullDocument is required and is the whole document (capture must ask for updateLookup). Its
//   documentKey holds the update specification ({$set: …}); only then _id is taken from fullDocument.
// - wallTime (6.0+) gives wall_time_ms; without it, clusterTime seconds * 1000.
// - resume_token is the canonical Extended JSON of `_id`; lsid is canonical Extended JSON.
// - invalidate events carry no ns; db/collection then come from `fallback` or stay empty.
// Errors (kInvalidArgument) name the field: missing/mistyped operationType, documentKey (or its _id)
// on document events, fullDocument on insert/replace, `to` on rename, ns (without fallback) on
// document and collection events, _id (the resume token), clusterTime. Messages read
// 'change stream "insert" event: field "documentKey" is missing'.
Result<ChangeEvent> FromChangeStreamDocument(const bson_t* change, const Namespace* fallback = nullptr);

// True when `change` is an update whose fullDocument is present and null: MongoDB was asked for the
// document (updateLookup or a post-image) and had none to give. What that means depends on the mode
// the stream was opened with; see ChangeEvent::document_gone.
bool FullDocumentIsNull(const bson_t* change);

// A document copied by the initial snapshot: kind kRead, document_key {_id}, after = doc, no resume
// token (the snapshot's checkpoint is kept by capture, not in events). Fails when doc has no _id.
Result<ChangeEvent> MakeSnapshotRead(std::string_view db, std::string_view collection, const bson_t* doc);

// Reassembles events that MongoDB 7.0+ splits with the $changeStreamSplitLargeEvent stage: every
// fragment carries splitEvent {fragment: n, of: m} (n from 1), its own _id, and a disjoint subset of
// the event's top-level fields. Feed every raw event in stream order to Add():
// - an event without splitEvent passes through unchanged (unless fragments are pending: an error);
// - fragment n < m is kept and Add returns nullopt;
// - fragment m completes the event: Add returns the merged event, whose _id is the LAST fragment's
//   _id -- the only token to checkpoint, because resuming after an earlier fragment's token would
//   restart in the middle of the event.
// A fragment out of order, of a different `of`, or a missing one gives kInvalidArgument naming the
// fragment's resume token and drops the pending fragments; capture resumes from its last checkpoint
// (before the event's first fragment) to retry.
// Thread safety: one owner thread.
class SplitEventAssembler {
 public:
  Result<std::optional<BsonDocument>> Add(const bson_t* raw);
  // True while fragments of an event are held (do not checkpoint then).
  bool pending() const { return next_fragment_ != 0; }
  // Drops pending fragments (after the stream was reopened).
  void Reset();

 private:
  BsonDocument merged_;    // union of the fragments' fields so far, without _id and splitEvent
  int32_t next_fragment_ = 0;  // 0: none pending
  int32_t of_ = 0;
};

// ---------------------------------------------------------------------------------------------
// ChangeEvent <-> Kafka messages (docs/events.md)

struct EncodeOptions {
  // source.name: the logical name of the captured deployment (Debezium's topic.prefix). Must not be
  // empty. Default: "m2m".
  std::string server_name = "m2m";
  // Marks a kRead event as the snapshot's last record: source.snapshot "last" instead of "true".
  // Ignored for other kinds. Default: false.
  bool last_snapshot_record = false;
  // Top-level ts_ms: when capture processed the event, in ms since the epoch. 0 uses the event's
  // wall_time_ms, which keeps encoding deterministic in tests. Default: 0.
  int64_t processed_at_ms = 0;

  Status Validate() const;
};

// The message key: {"id": "<canonical Extended JSON of document_key._id>"}. The same _id gives the
// same bytes every time, so all events of one document land in one partition and stay ordered.
// Collection-level events (no document_key) get {"id": null}; capture must deliver them in order
// with the collection's other events, e.g. a copy to every partition (docs/events.md).
std::string EncodeKey(const ChangeEvent& event);

// The message value (docs/events.md). Its size is not bounded here; see the header comment.
std::string EncodeValue(const ChangeEvent& event, const EncodeOptions& options = {});

// EncodeKey and EncodeValue at once, or an error when any text the event carries is not UTF-8: in a
// document or value (MongoDB stores such text unchecked; JSON cannot carry it, and EncodeKey/EncodeValue
// write that document as "") or in a name such as a removed field's (written with U+FFFD, so naming
// another field). Costs no more than the two.
struct EncodedEvent {
  std::string key;
  std::string value;
};
Result<EncodedEvent> EncodeEvent(const ChangeEvent& event, const EncodeOptions& options);

// Decodes one Kafka message. `key`/`value` are nullopt for a null key/value.
// - nullopt result: a Debezium tombstone (null value after a delete), to skip. Not an error.
// - Our format is recognised by its "m2m" block; its version must be kEventFormatVersion.
// - Other values are read as Debezium MongoDB events (op c/u/d/r), with or without the
//   {"schema", "payload"} envelope; document_key is {_id} from `after` when present (exact type),
//   else from the message key's "id". Fields only we carry (resume token, replace vs update,
//   collection events) are then absent: a Debezium "u" with updateDescription is kUpdate, without it
//   kReplace. A null value, JSON null, or an envelope with a null payload is a tombstone (nullopt).
// Errors (kInvalidArgument) name the field and the cause, e.g. "value.after: invalid Extended JSON".
Result<std::optional<ChangeEvent>> DecodeEvent(std::optional<std::string_view> key,
                                               std::optional<std::string_view> value);

// The event kind as written in m2m.event: "read", "insert", "update", "replace", "delete", "drop",
// "rename", "dropDatabase", "invalidate".
std::string_view EventKindName(EventKind kind);
Result<EventKind> ParseEventKind(std::string_view name);

}  // namespace m2m
