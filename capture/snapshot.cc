#include "snapshot.h"

#include <mongoc/mongoc.h>

#include <nlohmann/json.hpp>

#include "mongo_error.h"

namespace m2m::capture {
namespace {

using nlohmann::json;

// BSON type classes in MongoDB's sort order, as $type aliases. Types that cannot be an _id (array)
// are absent, and so are the deprecated symbol, JavaScript, regex, undefined and DBPointer types: a
// collection with an _id outside these classes is reported before anything is copied, never half
// copied.
constexpr const char* kTypeClasses[] = {"minKey", "null", "number", "string", "object", "binData",
                                        "objectId", "bool", "date", "timestamp", "maxKey"};

// The index in kTypeClasses of a value's class, or -1.
int TypeClassOf(bson_type_t type) {
  switch (type) {
    case BSON_TYPE_MINKEY: return 0;
    case BSON_TYPE_NULL: return 1;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128: return 2;
    case BSON_TYPE_UTF8: return 3;
    case BSON_TYPE_DOCUMENT: return 4;
    case BSON_TYPE_BINARY: return 5;
    case BSON_TYPE_OID: return 6;
    case BSON_TYPE_BOOL: return 7;
    case BSON_TYPE_DATE_TIME: return 8;
    case BSON_TYPE_TIMESTAMP: return 9;
    case BSON_TYPE_MAXKEY: return 10;
    default: return -1;
  }
}

std::string Name(const Namespace& ns) { return ns.db + "." + ns.collection; }

struct CollectionHandle {
  mongoc_collection_t* c;
  CollectionHandle(MongoClient& client, const Namespace& ns)
      : c(mongoc_client_get_collection(static_cast<mongoc_client_t*>(client.native_handle()), ns.db.c_str(),
                                       ns.collection.c_str())) {}
  ~CollectionHandle() { mongoc_collection_destroy(c); }
};

// {_id: {$type: class[, $gte: lo][, $lt: hi]}}
void AppendChunkFilter(bson_t* filter, const SnapshotChunk& chunk) {
  bson_t id;
  BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &id);
  BSON_APPEND_UTF8(&id, "$type", chunk.type_class.c_str());
  bson_iter_t it;
  if (chunk.lo && bson_iter_init_find(&it, chunk.lo->get(), "v")) bson_append_iter(&id, "$gte", -1, &it);
  if (chunk.hi && bson_iter_init_find(&it, chunk.hi->get(), "v")) bson_append_iter(&id, "$lt", -1, &it);
  bson_append_document_end(filter, &id);
}

Status CursorError(mongoc_cursor_t* cursor, const std::string& what) {
  bson_error_t error;
  const bson_t* reply = nullptr;
  if (mongoc_cursor_error_document(cursor, &error, &reply)) return MongoStatus(error, what, reply);
  return Status::OK();
}

std::optional<std::string> BoundJson(const std::optional<BsonDocument>& bound) {
  if (!bound) return std::nullopt;
  return bound->ToCanonicalJson();
}

}  // namespace

Status SnapshotOptions::Validate() const {
  if (chunk_size <= 0) return Status::Invalid("snapshot.chunk_size must be positive");
  if (parallelism <= 0) return Status::Invalid("snapshot.parallelism must be positive");
  return Status::OK();
}

bool CollectionSnapshot::complete() const {
  for (bool d : done) {
    if (!d) return false;
  }
  return true;
}

std::string CollectionSnapshot::ToJson() const {
  json chunk_list = json::array();
  for (const auto& c : chunks) {
    json j = {{"type", c.type_class}, {"lo", nullptr}, {"hi", nullptr}};
    if (auto lo = BoundJson(c.lo)) j["lo"] = *lo;
    if (auto hi = BoundJson(c.hi)) j["hi"] = *hi;
    chunk_list.push_back(std::move(j));
  }
  json d = json::array();
  for (bool b : done) d.push_back(b);
  return json{{"v", 1},         {"db", ns.db},           {"collection", ns.collection}, {"chunks", chunk_list},
              {"done", d},      {"documents", documents}, {"copied", copied}}
      .dump();
}

Result<CollectionSnapshot> CollectionSnapshot::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("chunks") || !j.contains("done")) {
    return Status::Invalid("snapshot progress record is not valid: " + text.substr(0, 200));
  }
  CollectionSnapshot s;
  s.ns = {j.value("db", ""), j.value("collection", "")};
  s.documents = j.value("documents", int64_t{0});
  s.copied = j.value("copied", int64_t{0});
  for (const auto& c : j["chunks"]) {
    SnapshotChunk chunk;
    chunk.type_class = c.value("type", "");
    for (auto [field, bound] : {std::pair{"lo", &chunk.lo}, std::pair{"hi", &chunk.hi}}) {
      if (c.contains(field) && c[field].is_string()) {
        M2M_ASSIGN_OR_RETURN(BsonDocument b, BsonDocument::FromJson(c[field].get<std::string>()));
        *bound = std::move(b);
      }
    }
    s.chunks.push_back(std::move(chunk));
  }
  for (const auto& d : j["done"]) s.done.push_back(d.get<bool>());
  if (s.done.size() != s.chunks.size()) return Status::Invalid("snapshot progress record of " + Name(s.ns) + " is inconsistent");
  return s;
}

Result<std::vector<Namespace>> ListCollections(MongoClient& client, const StreamOptions& stream) {
  if (stream.scope == StreamScope::kCollection) return std::vector<Namespace>{{stream.database, stream.collection}};
  auto* mc = static_cast<mongoc_client_t*>(client.native_handle());
  bson_error_t error;
  std::vector<std::string> dbs;
  if (stream.scope == StreamScope::kDatabase) {
    dbs.push_back(stream.database);
  } else {
    char** names = mongoc_client_get_database_names_with_opts(mc, nullptr, &error);
    if (names == nullptr) return MongoStatus(error, "listing databases");
    for (char** n = names; *n; ++n) {
      std::string db(*n);
      if (db != "admin" && db != "local" && db != "config") dbs.push_back(db);
    }
    bson_strfreev(names);
  }
  std::vector<Namespace> out;
  for (const auto& db : dbs) {
    mongoc_database_t* d = mongoc_client_get_database(mc, db.c_str());
    char** names = mongoc_database_get_collection_names_with_opts(d, nullptr, &error);
    mongoc_database_destroy(d);
    if (names == nullptr) return MongoStatus(error, "listing the collections of " + db);
    for (char** n = names; *n; ++n) {
      std::string coll(*n);
      if (coll.rfind("system.", 0) != 0) out.push_back({db, coll});
    }
    bson_strfreev(names);
  }
  return out;
}

Status ChunkPlanner::Add(const bson_iter_t& id) {
  int type_class = TypeClassOf(bson_iter_type(&id));
  if (type_class < 0) {
    bson_t shown = BSON_INITIALIZER;
    bson_append_iter(&shown, "_id", 3, &id);
    std::string example = BsonDocument(&shown).ToRelaxedJson();
    bson_destroy(&shown);
    return Status::Invalid("has documents whose _id the snapshot cannot range-scan (symbol, JavaScript, regex, "
                           "undefined or DBPointer type), e.g. " + example);
  }
  ClassChunks& c = classes_[type_class];
  if (c.in_open == chunk_size_) {
    BsonDocument bound;
    bson_append_iter(bound.mutable_get(), "v", 1, &id);
    c.closed.push_back({kTypeClasses[type_class], std::move(c.open_lo), bound});
    c.open_lo = std::move(bound);
    c.in_open = 0;
  }
  ++c.in_open;
  ++documents_;
  return Status::OK();
}

std::vector<SnapshotChunk> ChunkPlanner::Finish() {
  std::vector<SnapshotChunk> chunks;
  for (auto& [type_class, c] : classes_) {  // std::map: in kTypeClasses order
    for (auto& chunk : c.closed) chunks.push_back(std::move(chunk));
    chunks.push_back({kTypeClasses[type_class], std::move(c.open_lo), std::nullopt});
  }
  classes_.clear();
  return chunks;
}

Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size) {
  CollectionHandle coll(client, ns);
  bson_t filter = BSON_INITIALIZER;
  bson_t* opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll.c, &filter, opts, nullptr);
  bson_destroy(opts);
  ChunkPlanner planner(chunk_size);
  const bson_t* doc;
  Status st;
  while (st.ok() && mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "_id")) {
      st = planner.Add(it);
      if (!st.ok()) st = Status(StatusCode::kMongo, Name(ns) + " " + st.message() + "; capture it with --snapshot never");
    }
  }
  if (st.ok()) st = CursorError(cursor, "planning the snapshot of " + Name(ns));
  mongoc_cursor_destroy(cursor);
  M2M_RETURN_NOT_OK(st);
  CollectionSnapshot plan;
  plan.ns = ns;
  plan.documents = planner.documents();
  plan.chunks = planner.Finish();
  plan.done.assign(plan.chunks.size(), false);
  return plan;
}

Result<std::vector<BsonDocument>> ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk) {
  CollectionHandle coll(client, ns);
  bson_t filter = BSON_INITIALIZER;
  AppendChunkFilter(&filter, chunk);
  bson_t* opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll.c, &filter, opts, nullptr);
  bson_destroy(opts);
  bson_destroy(&filter);
  std::vector<BsonDocument> docs;
  const bson_t* doc;
  while (mongoc_cursor_next(cursor, &doc)) docs.emplace_back(doc);
  Status st = CursorError(cursor, "reading a snapshot chunk of " + Name(ns));
  mongoc_cursor_destroy(cursor);
  M2M_RETURN_NOT_OK(st);
  return docs;
}

}  // namespace m2m::capture
