#include "snapshot.h"

#include <mongoc/mongoc.h>

#include <nlohmann/json.hpp>

#include "mongo_error.h"

namespace m2m::capture {
namespace {

using nlohmann::json;

// BSON type classes in MongoDB's sort order, as $type aliases. Types that cannot be an _id (array,
// regex, undefined) are absent, and so are the deprecated symbol and JavaScript types; a collection
// with an _id outside these classes is reported before anything is copied, never half copied.
constexpr const char* kTypeClasses[] = {"minKey", "null", "number", "string", "object", "binData",
                                        "objectId", "bool", "date", "timestamp", "maxKey"};

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

// Fails, naming an example, when a document's _id is of a type no class covers: a range scan would
// silently skip it.
Status CheckIdTypes(mongoc_collection_t* coll, const Namespace& ns) {
  bson_t filter = BSON_INITIALIZER, id, negation, classes;
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
  BSON_APPEND_DOCUMENT_BEGIN(&id, "$not", &negation);
  BSON_APPEND_ARRAY_BEGIN(&negation, "$type", &classes);
  int i = 0;
  for (const char* type_class : kTypeClasses) {
    std::string index = std::to_string(i++);
    BSON_APPEND_UTF8(&classes, index.c_str(), type_class);
  }
  bson_append_array_end(&negation, &classes);
  bson_append_document_end(&id, &negation);
  bson_append_document_end(&filter, &id);
  bson_t* opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll, &filter, opts, nullptr);
  bson_destroy(opts);
  bson_destroy(&filter);
  const bson_t* doc;
  Status st;
  if (mongoc_cursor_next(cursor, &doc)) {
    st = Status(StatusCode::kMongo, Name(ns) + " has documents whose _id the snapshot cannot range-scan (symbol or "
                                               "JavaScript type), e.g. " + BsonDocument(doc).ToRelaxedJson() +
                                               "; capture it with --snapshot never");
  } else {
    st = CursorError(cursor, "checking the _id types of " + Name(ns));
  }
  mongoc_cursor_destroy(cursor);
  return st;
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

Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size) {
  CollectionHandle coll(client, ns);
  CollectionSnapshot plan;
  plan.ns = ns;
  for (const char* type_class : kTypeClasses) {
    bson_t filter = BSON_INITIALIZER;
    AppendChunkFilter(&filter, SnapshotChunk{type_class, std::nullopt, std::nullopt});
    bson_t* opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll.c, &filter, opts, nullptr);
    bson_destroy(opts);
    bson_destroy(&filter);
    const bson_t* doc;
    int64_t n = 0;
    SnapshotChunk current{type_class, std::nullopt, std::nullopt};
    while (mongoc_cursor_next(cursor, &doc)) {
      if (n > 0 && n % chunk_size == 0) {
        bson_iter_t it;
        bson_iter_init_find(&it, doc, "_id");
        BsonDocument bound;
        bson_append_iter(bound.mutable_get(), "v", 1, &it);
        current.hi = bound;
        plan.chunks.push_back(current);
        current = SnapshotChunk{type_class, std::move(bound), std::nullopt};
      }
      ++n;
    }
    Status st = CursorError(cursor, "planning the snapshot of " + Name(ns));
    mongoc_cursor_destroy(cursor);
    M2M_RETURN_NOT_OK(st);
    if (n > 0) plan.chunks.push_back(std::move(current));
    plan.documents += n;
  }
  M2M_RETURN_NOT_OK(CheckIdTypes(coll.c, ns));
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
