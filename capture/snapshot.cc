#include "snapshot.h"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <iterator>

#include <nlohmann/json.hpp>

#include "mongo_error.h"

namespace m2m::capture {
namespace {

using nlohmann::json;

// BSON type classes in MongoDB's sort order, as $type aliases, that ranges can cover. Types that
// cannot be an _id (array) are absent, and so are the types of kUnrangedClass.
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

// $type: [every class a range covers]
void AppendRangedTypes(bson_t* parent) {
  bson_t types;
  BSON_APPEND_ARRAY_BEGIN(parent, "$type", &types);
  for (size_t i = 0; i < std::size(kTypeClasses); ++i) {
    BSON_APPEND_UTF8(&types, std::to_string(i).c_str(), kTypeClasses[i]);
  }
  bson_append_array_end(parent, &types);
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

json ChunkJson(const SnapshotChunk& c) {
  json j = {{"type", c.type_class}, {"lo", nullptr}, {"hi", nullptr}};
  if (auto lo = BoundJson(c.lo)) j["lo"] = *lo;
  if (auto hi = BoundJson(c.hi)) j["hi"] = *hi;
  return j;
}

Result<SnapshotChunk> ChunkFromJson(const json& c) {
  SnapshotChunk chunk;
  chunk.type_class = c.value("type", "");
  for (auto [field, bound] : {std::pair{"lo", &chunk.lo}, std::pair{"hi", &chunk.hi}}) {
    if (c.contains(field) && c[field].is_string()) {
      M2M_ASSIGN_OR_RETURN(BsonDocument b, BsonDocument::FromJson(c[field].get<std::string>()));
      *bound = std::move(b);
    }
  }
  return chunk;
}

}  // namespace

bool RangeCovers(bson_type_t type) { return TypeClassOf(type) >= 0; }

// {_id: {$type: class[, $gte: lo][, $lt: hi]}}, or {_id: {$not: {$type: [ranged classes]}}} for the
// unranged chunk.
void AppendChunkFilter(bson_t* filter, const SnapshotChunk& chunk) {
  bson_t id;
  BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &id);
  if (chunk.type_class == kUnrangedClass) {
    bson_t negated;
    BSON_APPEND_DOCUMENT_BEGIN(&id, "$not", &negated);
    AppendRangedTypes(&negated);
    bson_append_document_end(&id, &negated);
    bson_append_document_end(filter, &id);
    return;
  }
  BSON_APPEND_UTF8(&id, "$type", chunk.type_class.c_str());
  bson_iter_t it;
  if (chunk.lo && bson_iter_init_find(&it, chunk.lo->get(), "v")) bson_append_iter(&id, "$gte", -1, &it);
  if (chunk.hi && bson_iter_init_find(&it, chunk.hi->get(), "v")) bson_append_iter(&id, "$lt", -1, &it);
  bson_append_document_end(filter, &id);
}

Status SnapshotOptions::Validate() const {
  if (chunk_size <= 0) return Status::Invalid("snapshot.chunk_size must be positive");
  if (parallelism <= 0) return Status::Invalid("snapshot.parallelism must be positive");
  return Status::OK();
}

bool CollectionSnapshot::complete() const { return chunks_done() == static_cast<int64_t>(done.size()); }

int64_t CollectionSnapshot::chunks_done() const { return std::count(done.begin(), done.end(), true); }

std::string CollectionSnapshot::ProgressJson() const {
  size_t frontier = 0;
  while (frontier < done.size() && done[frontier]) ++frontier;
  json after = json::array();
  for (size_t i = frontier; i < done.size(); ++i) {
    if (done[i]) after.push_back(i);
  }
  return json{{"v", 2},
              {"db", ns.db},
              {"collection", ns.collection},
              {"chunks", done.size()},
              {"frontier", frontier},
              {"done_after", std::move(after)},
              {"documents", documents},
              {"copied", copied}}
      .dump();
}

std::vector<std::string> CollectionSnapshot::PlanPages() const {
  std::vector<std::string> pages;
  json page_chunks = json::array();
  size_t first = 0, bytes = 0;
  auto close_page = [&](size_t next_first) {
    pages.push_back(json{{"v", 2}, {"db", ns.db}, {"collection", ns.collection}, {"first", first},
                         {"chunks", std::move(page_chunks)}}
                        .dump());
    page_chunks = json::array();
    first = next_first;
    bytes = 0;
  };
  for (size_t i = 0; i < chunks.size(); ++i) {
    json c = ChunkJson(chunks[i]);
    size_t size = c.dump().size();
    if (bytes > 0 && bytes + size > kPlanPageBytes) close_page(i);
    bytes += size + 1;
    page_chunks.push_back(std::move(c));
  }
  if (!page_chunks.empty()) close_page(chunks.size());
  return pages;
}

Result<CollectionSnapshot> CollectionSnapshot::FromJson(
    const std::string& text, const std::function<std::optional<std::string>(size_t)>& page) {
  json j = json::parse(text, nullptr, false);
  auto invalid = [&](const std::string& why) {
    return Status::Invalid("snapshot progress record is not valid (" + why + "): " + text.substr(0, 200));
  };
  if (j.is_discarded() || !j.is_object() || !j.contains("chunks")) return invalid("not a JSON object with chunks");
  CollectionSnapshot s;
  s.ns = {j.value("db", ""), j.value("collection", "")};
  s.documents = j.value("documents", int64_t{0});
  s.copied = j.value("copied", int64_t{0});
  int version = j.value("v", 1);
  if (version == 1) {  // the whole plan and a flag per chunk, as written before version 2
    if (!j["chunks"].is_array() || !j.contains("done") || !j["done"].is_array()) return invalid("version 1");
    for (const auto& c : j["chunks"]) {
      M2M_ASSIGN_OR_RETURN(SnapshotChunk chunk, ChunkFromJson(c));
      s.chunks.push_back(std::move(chunk));
    }
    for (const auto& d : j["done"]) s.done.push_back(d.get<bool>());
    if (s.done.size() != s.chunks.size()) return invalid("a flag per chunk expected");
    return s;
  }
  if (version != 2) return invalid("unknown version " + std::to_string(version));
  if (!j["chunks"].is_number_unsigned() || !j.value("frontier", json()).is_number_unsigned() ||
      !j.value("done_after", json()).is_array()) {
    return invalid("version 2");
  }
  size_t count = j["chunks"].get<size_t>();
  size_t frontier = j["frontier"].get<size_t>();
  if (frontier > count) return invalid("frontier beyond the chunks");
  s.done.assign(count, false);
  std::fill(s.done.begin(), s.done.begin() + static_cast<std::ptrdiff_t>(frontier), true);
  for (const auto& i : j["done_after"]) {
    if (!i.is_number_unsigned() || i.get<size_t>() >= count) return invalid("done_after names no chunk");
    s.done[i.get<size_t>()] = true;
  }
  if (!page || s.complete()) return s;
  for (size_t p = 0; s.chunks.size() < count; ++p) {
    std::optional<std::string> page_text = page(p);
    std::string where = "the snapshot plan of " + Name(s.ns) + ", page " + std::to_string(p);
    if (!page_text) return Status::Invalid(where + ", is missing from the checkpoint topic");
    json pj = json::parse(*page_text, nullptr, false);
    if (pj.is_discarded() || !pj.is_object() || pj.value("first", json()) != json(s.chunks.size()) ||
        !pj.value("chunks", json()).is_array() || pj["chunks"].empty()) {
      return Status::Invalid(where + ", is not valid: " + page_text->substr(0, 200));
    }
    for (const auto& c : pj["chunks"]) {
      M2M_ASSIGN_OR_RETURN(SnapshotChunk chunk, ChunkFromJson(c));
      s.chunks.push_back(std::move(chunk));
    }
  }
  if (s.chunks.size() != count) return invalid("its plan has " + std::to_string(s.chunks.size()) + " chunks");
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

void ChunkPlanner::AddUnranged(int64_t n) {
  unranged_ += n;
  documents_ += n;
}

void ChunkPlanner::Add(const bson_iter_t& id) {
  int type_class = TypeClassOf(bson_iter_type(&id));
  if (type_class < 0) return AddUnranged(1);
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
}

std::vector<SnapshotChunk> ChunkPlanner::Finish() {
  std::vector<SnapshotChunk> chunks;
  for (auto& [type_class, c] : classes_) {  // std::map: in kTypeClasses order
    for (auto& chunk : c.closed) chunks.push_back(std::move(chunk));
    chunks.push_back({kTypeClasses[type_class], std::move(c.open_lo), std::nullopt});
  }
  if (unranged_ > 0) chunks.push_back({kUnrangedClass, std::nullopt, std::nullopt});
  classes_.clear();
  unranged_ = 0;
  return chunks;
}

Result<CollectionSnapshot> PlanSnapshot(MongoClient& client, const Namespace& ns, int chunk_size) {
  CollectionHandle coll(client, ns);
  bson_t filter = BSON_INITIALIZER, id;
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
  AppendRangedTypes(&id);
  bson_append_document_end(&filter, &id);
  bson_t* opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll.c, &filter, opts, nullptr);
  bson_destroy(opts);
  bson_destroy(&filter);
  ChunkPlanner planner(chunk_size);
  const bson_t* doc;
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "_id")) planner.Add(it);
  }
  Status st = CursorError(cursor, "planning the snapshot of " + Name(ns));
  mongoc_cursor_destroy(cursor);
  M2M_RETURN_NOT_OK(st);
  bson_t unranged = BSON_INITIALIZER;
  AppendChunkFilter(&unranged, {kUnrangedClass, std::nullopt, std::nullopt});
  bson_t reply;
  bson_error_t error;
  int64_t others = mongoc_collection_count_documents(coll.c, &unranged, nullptr, nullptr, &reply, &error);
  bson_destroy(&unranged);
  if (others < 0) st = MongoStatus(error, "counting the documents of " + Name(ns) + " whose _id no range covers", &reply);
  bson_destroy(&reply);
  M2M_RETURN_NOT_OK(st);
  planner.AddUnranged(others);
  CollectionSnapshot plan;
  plan.ns = ns;
  plan.documents = planner.documents();
  plan.chunks = planner.Finish();
  plan.done.assign(plan.chunks.size(), false);
  return plan;
}

Status ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk,
                 const std::function<bool(BsonDocument)>& each) {
  CollectionHandle coll(client, ns);
  bson_t filter = BSON_INITIALIZER;
  AppendChunkFilter(&filter, chunk);
  // The unranged chunk is read whole, so its order does not matter (and regexes have none to rely on).
  bson_t* opts = chunk.type_class == kUnrangedClass ? bson_new() : BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll.c, &filter, opts, nullptr);
  bson_destroy(opts);
  bson_destroy(&filter);
  const bson_t* doc;
  bool more = true;
  while (more && mongoc_cursor_next(cursor, &doc)) more = each(BsonDocument(doc));
  Status st = more ? CursorError(cursor, "reading a snapshot chunk of " + Name(ns)) : Status::OK();
  mongoc_cursor_destroy(cursor);
  return st;
}

Result<std::vector<BsonDocument>> ReadChunk(MongoClient& client, const Namespace& ns, const SnapshotChunk& chunk) {
  std::vector<BsonDocument> docs;
  M2M_RETURN_NOT_OK(ReadChunk(client, ns, chunk, [&](BsonDocument doc) {
    docs.push_back(std::move(doc));
    return true;
  }));
  return docs;
}

ChunkQueue::ChunkQueue(size_t chunks, size_t window, int64_t max_bytes)
    : chunks_(chunks), window_(std::max<size_t>(window, 1)), half_(max_bytes / 2) {}

std::optional<size_t> ChunkQueue::Take() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return abandoned_ || next_ >= chunks_ || next_ < current_ + window_; });
  if (abandoned_ || next_ >= chunks_) return std::nullopt;
  taken_[next_];
  return next_++;
}

bool ChunkQueue::Fits(size_t chunk, int64_t size) const {
  if (chunk == current_) {
    int64_t held = taken_.at(chunk).bytes;
    return held == 0 || held + size <= half_;
  }
  return ahead_bytes_ + size <= half_;
}

bool ChunkQueue::Put(size_t chunk, SnapshotRecord record) {
  int64_t size = record.bytes();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return abandoned_ || Fits(chunk, size); });
  if (abandoned_) return false;
  Chunk& c = taken_.at(chunk);
  c.records.push_back(std::move(record));
  c.bytes += size;
  if (chunk != current_) ahead_bytes_ += size;
  cv_.notify_all();
  return true;
}

void ChunkQueue::Finish(size_t chunk, Status status) {
  std::lock_guard lock(mu_);
  Chunk& c = taken_.at(chunk);
  c.finished = true;
  c.status = std::move(status);
  cv_.notify_all();
}

bool ChunkQueue::CurrentReady() const {
  auto c = taken_.find(current_);
  return c != taken_.end() && (!c->second.records.empty() || c->second.finished);
}

bool ChunkQueue::Ready() const {
  std::lock_guard lock(mu_);
  return CurrentReady();
}

ChunkQueue::Item ChunkQueue::Next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  Item item;
  if (!cv_.wait_for(lock, timeout, [&] { return CurrentReady(); })) return item;
  Chunk& c = taken_.at(current_);
  if (c.records.empty()) {
    item.kind = Item::kEnd;
    item.status = c.status;
    return item;
  }
  item.kind = Item::kRecord;
  item.record = std::move(c.records.front());
  c.records.pop_front();
  c.bytes -= item.record->bytes();
  cv_.notify_all();
  return item;
}

void ChunkQueue::Published() {
  std::lock_guard lock(mu_);
  taken_.erase(current_);
  ++current_;
  auto next = taken_.find(current_);
  if (next != taken_.end()) ahead_bytes_ -= next->second.bytes;  // it is the current chunk now
  cv_.notify_all();
}

void ChunkQueue::Abandon() {
  std::lock_guard lock(mu_);
  abandoned_ = true;
  cv_.notify_all();
}

int64_t ChunkQueue::bytes() const {
  std::lock_guard lock(mu_);
  int64_t total = 0;
  for (const auto& [position, c] : taken_) total += c.bytes;
  return total;
}

}  // namespace m2m::capture
