#include "change_stream_reader.h"

#include <mongoc/mongoc.h>

#include "mongo_error.h"

namespace m2m::capture {
namespace {

// The server's ways of saying a stream's resume point is gone from the oplog: ChangeStreamHistoryLost
// (286) when a stream is opened or resumed before the oplog's oldest entry; CappedPositionLost (136)
// when an open stream's position was overwritten and the driver did not resume; ChangeStreamFatalError
// (280) when the resume token's own event is not found where its cluster time says it must be.
bool IsHistoryLost(const bson_error_t& e) { return e.code == 286 || e.code == 136 || e.code == 280; }

// A failed change-stream operation: kHistoryLost when the stream cannot go on from its resume point.
Status StreamError(const bson_error_t& error, const bson_t* reply, const std::string& doing) {
  if (IsHistoryLost(error)) {
    return Status(StatusCode::kHistoryLost, doing + ": the resume point is no longer in the oplog: " + error.message,
                  false, error.code);
  }
  return MongoStatus(error, doing, reply);
}

const char* FullDocumentName(FullDocumentMode m) {
  switch (m) {
    case FullDocumentMode::kDefault: return "default";
    case FullDocumentMode::kUpdateLookup: return "updateLookup";
    case FullDocumentMode::kWhenAvailable: return "whenAvailable";
    case FullDocumentMode::kRequired: return "required";
  }
  return "default";
}

const char* BeforeChangeName(BeforeChangeMode m) {
  switch (m) {
    case BeforeChangeMode::kOff: return "off";
    case BeforeChangeMode::kWhenAvailable: return "whenAvailable";
    case BeforeChangeMode::kRequired: return "required";
  }
  return "off";
}

std::string DescribeScope(const StreamOptions& o) {
  switch (o.scope) {
    case StreamScope::kCollection: return "collection " + o.database + "." + o.collection;
    case StreamScope::kDatabase: return "database " + o.database;
    case StreamScope::kDeployment: return "the deployment";
  }
  return "?";
}

// The server's maxWireVersion from the handshake's hello reply (no round trip of its own).
Result<int32_t> MaxWireVersion(mongoc_client_t* mc) {
  bson_error_t error;
  mongoc_server_description_t* server = mongoc_client_select_server(mc, false, nullptr, &error);
  if (server == nullptr) return MongoStatus(error, "selecting a server for the change stream", nullptr);
  bson_iter_t it;
  int32_t version = 0;
  if (bson_iter_init_find(&it, mongoc_server_description_hello_response(server), "maxWireVersion") &&
      BSON_ITER_HOLDS_INT(&it)) {
    version = static_cast<int32_t>(bson_iter_as_int64(&it));
  }
  mongoc_server_description_destroy(server);
  return version;
}

}  // namespace

BsonDocument ChangeStreamPipeline(int32_t max_wire_version) {
  bson_t pipeline = BSON_INITIALIZER;
  if (max_wire_version >= kSplitLargeEventWireVersion) {
    bson_t stage;
    BSON_APPEND_DOCUMENT_BEGIN(&pipeline, "0", &stage);
    bson_t empty = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT(&stage, "$changeStreamSplitLargeEvent", &empty);
    bson_append_document_end(&pipeline, &stage);
  }
  BsonDocument out(&pipeline);
  bson_destroy(&pipeline);
  return out;
}

Status StreamOptions::Validate() const {
  if (scope != StreamScope::kDeployment && database.empty()) {
    return Status::Invalid("a collection or database change stream needs a database name");
  }
  if (scope == StreamScope::kCollection && collection.empty()) {
    return Status::Invalid("a collection change stream needs a collection name");
  }
  if (batch_size <= 0) return Status::Invalid("batch_size must be positive");
  if (max_await.count() <= 0) return Status::Invalid("max_await must be positive");
  return Status::OK();
}

struct ChangeStreamReader::Impl {
  mongoc_change_stream_t* stream = nullptr;
  mongoc_collection_t* collection = nullptr;
  mongoc_database_t* database = nullptr;
  std::string scope;
  ~Impl() {
    if (stream) mongoc_change_stream_destroy(stream);
    if (collection) mongoc_collection_destroy(collection);
    if (database) mongoc_database_destroy(database);
  }
};

ChangeStreamReader::ChangeStreamReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChangeStreamReader::~ChangeStreamReader() = default;

Result<std::unique_ptr<ChangeStreamReader>> ChangeStreamReader::Open(MongoClient& client, const StreamOptions& o,
                                                                     const ResumePoint& from) {
  M2M_RETURN_NOT_OK(o.Validate());
  auto* mc = static_cast<mongoc_client_t*>(client.native_handle());
  bson_t opts = BSON_INITIALIZER;
  BSON_APPEND_INT32(&opts, "batchSize", o.batch_size);
  BSON_APPEND_INT64(&opts, "maxAwaitTimeMS", o.max_await.count());
  if (o.full_document != FullDocumentMode::kDefault) {
    BSON_APPEND_UTF8(&opts, "fullDocument", FullDocumentName(o.full_document));
  }
  if (o.before_change != BeforeChangeMode::kOff) {
    BSON_APPEND_UTF8(&opts, "fullDocumentBeforeChange", BeforeChangeName(o.before_change));
  }
  if (from.resume_after) {
    // startAfter, unlike resumeAfter, also accepts the token of an invalidate event, so a stream that
    // was invalidated (collection dropped and recreated) can continue with the new collection.
    BSON_APPEND_DOCUMENT(&opts, "startAfter", from.resume_after->get());
  } else if (from.start_at_operation_time) {
    BSON_APPEND_TIMESTAMP(&opts, "startAtOperationTime", from.start_at_operation_time->first,
                          from.start_at_operation_time->second);
  }
  auto wire_version = MaxWireVersion(mc);
  if (!wire_version.ok()) {
    bson_destroy(&opts);
    return wire_version.status();
  }
  BsonDocument pipeline_doc = ChangeStreamPipeline(*wire_version);
  const bson_t* pipeline = pipeline_doc.get();
  auto impl = std::make_unique<Impl>();
  impl->scope = DescribeScope(o);
  switch (o.scope) {
    case StreamScope::kCollection:
      impl->collection = mongoc_client_get_collection(mc, o.database.c_str(), o.collection.c_str());
      impl->stream = mongoc_collection_watch(impl->collection, pipeline, &opts);
      break;
    case StreamScope::kDatabase:
      impl->database = mongoc_client_get_database(mc, o.database.c_str());
      impl->stream = mongoc_database_watch(impl->database, pipeline, &opts);
      break;
    case StreamScope::kDeployment:
      impl->stream = mongoc_client_watch(mc, pipeline, &opts);
      break;
  }
  bson_destroy(&opts);
  bson_error_t error;
  const bson_t* reply = nullptr;
  if (mongoc_change_stream_error_document(impl->stream, &error, &reply)) {
    return StreamError(error, reply, "opening the change stream on " + impl->scope);
  }
  return std::unique_ptr<ChangeStreamReader>(new ChangeStreamReader(std::move(impl)));
}

Result<std::optional<BsonDocument>> ChangeStreamReader::Next() {
  const bson_t* event = nullptr;
  if (mongoc_change_stream_next(impl_->stream, &event)) return std::optional<BsonDocument>(BsonDocument(event));
  bson_error_t error;
  const bson_t* reply = nullptr;
  if (mongoc_change_stream_error_document(impl_->stream, &error, &reply)) {
    return StreamError(error, reply, "reading the change stream on " + impl_->scope);
  }
  return std::optional<BsonDocument>{};
}

std::optional<BsonDocument> ChangeStreamReader::resume_token() const {
  const bson_t* token = mongoc_change_stream_get_resume_token(impl_->stream);
  if (token == nullptr || bson_empty(token)) return std::nullopt;
  return BsonDocument(token);
}

Result<int64_t> OplogWindowSeconds(MongoClient& client) {
  auto* mc = static_cast<mongoc_client_t*>(client.native_handle());
  mongoc_collection_t* oplog = mongoc_client_get_collection(mc, "local", "oplog.rs");
  bson_t filter = BSON_INITIALIZER;
  bson_t* opts = BCON_NEW("sort", "{", "$natural", BCON_INT32(1), "}", "limit", BCON_INT64(1), "projection", "{",
                          "ts", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(oplog, &filter, opts, nullptr);
  const bson_t* doc;
  Result<int64_t> window = Status(StatusCode::kMongo, "the oplog is empty");
  if (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    uint32_t t = 0, i = 0;
    if (bson_iter_init_find(&it, doc, "ts") && BSON_ITER_HOLDS_TIMESTAMP(&it)) bson_iter_timestamp(&it, &t, &i);
    window = static_cast<int64_t>(time(nullptr)) - static_cast<int64_t>(t);
  } else {
    bson_error_t error;
    const bson_t* reply = nullptr;
    if (mongoc_cursor_error_document(cursor, &error, &reply)) window = MongoStatus(error, "reading the oplog's start", reply);
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(opts);
  bson_destroy(&filter);
  mongoc_collection_destroy(oplog);
  return window;
}

Result<std::pair<uint32_t, uint32_t>> ServerClusterTime(MongoClient& client) {
  auto* mc = static_cast<mongoc_client_t*>(client.native_handle());
  bson_t* cmd = BCON_NEW("hello", BCON_INT32(1));
  bson_t reply;
  bson_error_t error;
  bool ok = mongoc_client_command_simple(mc, "admin", cmd, nullptr, &reply, &error);
  bson_destroy(cmd);
  if (!ok) {
    // Servers older than 4.4.2 know only the legacy name of the same command.
    bson_destroy(&reply);
    cmd = BCON_NEW("isMaster", BCON_INT32(1));
    ok = mongoc_client_command_simple(mc, "admin", cmd, nullptr, &reply, &error);
    bson_destroy(cmd);
  }
  if (!ok) {
    Status st = MongoStatus(error, "asking the server for its cluster time", &reply);
    bson_destroy(&reply);
    return st;
  }
  bson_iter_t it;
  std::pair<uint32_t, uint32_t> time{0, 0};
  if (bson_iter_init_find(&it, &reply, "operationTime") && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
    bson_iter_timestamp(&it, &time.first, &time.second);
  } else if (bson_iter_init_find(&it, &reply, "localTime") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
    time.first = static_cast<uint32_t>(bson_iter_date_time(&it) / 1000);
  }
  bson_destroy(&reply);
  if (time.first == 0) return Status(StatusCode::kMongo, "the server reported neither operationTime nor localTime");
  return time;
}

}  // namespace m2m::capture
