// ChangeStreamReader: reads raw change events from MongoDB with libmongoc, at collection, database
// or deployment scope, from a resume point.
//
// The reader does not interpret events (the event codec does) and does not decide what is durable
// (capture's loop does): it hands out raw events and, after each, the token to resume after it.
// resume_token() follows the change-streams specification: the last event's _id, or the server's
// postBatchResumeToken when a batch ends, so an idle stream still advances.
//
// Thread safety: one owner thread (libmongoc clients are single-threaded).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "m2m/bson_document.h"
#include "m2m/mongo_client.h"
#include "m2m/status.h"

namespace m2m::capture {

enum class StreamScope { kCollection, kDatabase, kDeployment };

// MongoDB's fullDocument option for update events.
enum class FullDocumentMode {
  kDefault,        // deltas only (updateDescription)
  kUpdateLookup,   // the document's current state, looked up when the event is read
  kWhenAvailable,  // the post-image, when the collection records them (MongoDB 6.0+)
  kRequired,       // the post-image; the stream fails if one is missing
};

// MongoDB's fullDocumentBeforeChange option.
enum class BeforeChangeMode { kOff, kWhenAvailable, kRequired };

// Where a stream starts. Exactly one of the members is used, in this order of preference.
struct ResumePoint {
  std::optional<BsonDocument> resume_after;      // a resume token: continue after that event
  std::optional<std::pair<uint32_t, uint32_t>> start_at_operation_time;  // cluster time {t, i}
  bool empty() const { return !resume_after && !start_at_operation_time; }
};

struct StreamOptions {
  StreamScope scope = StreamScope::kCollection;
  // Database watched (collection and database scope). Default: empty
  std::string database;
  // Collection watched (collection scope). Default: empty
  std::string collection;
  // Default: kUpdateLookup
  FullDocumentMode full_document = FullDocumentMode::kUpdateLookup;
  // Default: kOff
  BeforeChangeMode before_change = BeforeChangeMode::kOff;
  // Events per server batch. Default: 1000
  int batch_size = 1000;
  // How long the server waits for new events before answering an empty batch. Default: 500 ms
  std::chrono::milliseconds max_await = std::chrono::milliseconds(500);

  Status Validate() const;
};

// The first wire version of MongoDB 7.0, whose change streams accept $changeStreamSplitLargeEvent.
// (6.0.9+ accepts it too, but its wire version, 17, is that of every 6.0 release: it cannot be told
// apart from 6.0.0-6.0.8 without parsing the version string, so 6.0 streams go without the stage.)
inline constexpr int32_t kSplitLargeEventWireVersion = 21;

// The stages capture appends to $changeStream for a server of `max_wire_version` (from its hello
// reply), as a BSON array: $changeStreamSplitLargeEvent, last as MongoDB requires, when the server
// has it. An event over 16 MB then arrives as fragments (reassembled by SplitEventAssembler) instead
// of failing the stream with BSONObjectTooLarge.
BsonDocument ChangeStreamPipeline(int32_t max_wire_version);

class ChangeStreamReader {
 public:
  // Opens the stream on `client` (which must outlive the reader) from `from`; an empty point starts
  // at the server's present.
  static Result<std::unique_ptr<ChangeStreamReader>> Open(MongoClient& client, const StreamOptions& options,
                                                          const ResumePoint& from);
  ~ChangeStreamReader();

  // The next raw event, or nullopt when the server's batch is exhausted (after up to max_await).
  // An error saying the resume point is gone from the oplog (ChangeStreamHistoryLost 286,
  // CappedPositionLost 136, ChangeStreamFatalError 280) comes back with StatusCode::kHistoryLost, from
  // Open() as from Next().
  Result<std::optional<BsonDocument>> Next();

  // The token to resume after everything returned so far; empty when the server has given none yet
  // (no event and no postBatchResumeToken).
  std::optional<BsonDocument> resume_token() const;

 private:
  struct Impl;
  explicit ChangeStreamReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// How far back the oplog reaches, in seconds: now minus its oldest entry's time. Needs read access to
// local.oplog.rs (a replica set member; Atlas grants it to users with clusterMonitor).
Result<int64_t> OplogWindowSeconds(MongoClient& client);

// The server's current cluster time, for a first start when the stream gives no token: the
// operationTime of a command reply, else (servers that are not replica sets) the server's clock
// from hello.localTime with increment 0.
Result<std::pair<uint32_t, uint32_t>> ServerClusterTime(MongoClient& client);

}  // namespace m2m::capture
