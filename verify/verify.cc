#include "verify.h"

#include <mongoc/mongoc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "compare.h"
#include "key_candidates.h"
#include "m2m/event_codec.h"
#include "m2m/identifiers.h"
#include "mongo_error.h"
#include "snapshot.h"

namespace m2m::verify {
namespace {

using Clock = std::chrono::steady_clock;

// A root key as MySQL stores it: the text of each root key column, in primary key order.
using KeyTexts = std::vector<std::string>;

std::string Identity(const KeyTexts& key) {
  std::string out;
  for (const std::string& k : key) out += k + '\x1f';
  return out;
}

// A difference and what a recheck needs to look at it again.
struct Finding {
  Difference difference;
  KeyTexts key;                    // empty for kUnmappable and kCount (not rechecked by key)
  std::optional<BsonDocument> id;  // {"v": _id} when a document was seen
};

// The dotted field path of a key column, from its source (a JSON array of path components).
std::string DottedSource(const ColumnSchema& c) {
  nlohmann::json path = nlohmann::json::parse(c.source, nullptr, false);
  std::string dotted;
  if (!path.is_array()) return c.name;
  for (const auto& p : path) dotted += (dotted.empty() ? "" : ".") + (p.is_string() ? p.get<std::string>() : "");
  return dotted;
}

// Whether range `index` is in the sample.
bool Sampled(uint64_t index, double fraction, uint64_t seed) {
  if (fraction >= 1.0) return true;
  uint64_t h = (index + 1) * 0x9E3779B97F4A7C15ull ^ (seed + 0x632BE59BD9B4E019ull);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 29;
  return static_cast<double>(h >> 11) / static_cast<double>(uint64_t{1} << 53) < fraction;
}

// One collection: its tables on the server and the queries that read them.
class CollectionCheck {
 public:
  CollectionCheck(const VerifyOptions& o, MongoClient& mongo, MysqlConnection& mysql, const Mapper& mapper,
                  const Catalog& server, std::string collection)
      : o_(o), mongo_(mongo), mysql_(mysql), mapper_(mapper), server_(server), work_(server),
        collection_(std::move(collection)), root_name_(mapper.RootTableName(collection_, server)),
        root_(server.Find(root_name_)) {}

  const std::string& root_name() const { return root_name_; }
  MongoClient& Mongo() { return mongo_; }

  // Maps `docs`, reads the rows of their keys and of `also`, and returns what differs.
  Result<std::vector<Finding>> Check(const std::vector<BsonDocument>& docs, const std::vector<KeyTexts>& also);
  // The documents whose keys may be `keys` (and those with the given _ids); with `keys_only`, only
  // their key fields.
  Result<std::vector<BsonDocument>> FindDocuments(const std::vector<KeyTexts>& keys,
                                                  const std::vector<BsonDocument>& ids, bool keys_only);
  // The extra-row pass: root keys in key order, `range_size` at a time; `rows` is for progress.
  Status FindExtras(int64_t rows, std::vector<Finding>* out);
  Result<int64_t> MongoCount();
  Result<int64_t> MysqlCount();

 private:
  struct Expected {
    KeyTexts key;
    std::string label;
    BsonDocument id;
    KeyRows<Row> rows;
  };
  Result<std::optional<Expected>> Map(const BsonDocument& doc, std::vector<Finding>* unmappable);
  Result<std::map<std::string, KeyRows<StoredRow>>> ReadRows(const std::vector<KeyTexts>& keys);
  std::string KeyLiterals(const KeyTexts& key) const;
  std::string KeyColumns() const;
  std::string LabelOf(const KeyTexts& key) const;
  mongoc_collection_t* Collection() const {
    return mongoc_client_get_collection(static_cast<mongoc_client_t*>(mongo_.native_handle()),
                                        o_.mongo_database.c_str(), collection_.c_str());
  }

  const VerifyOptions& o_;
  MongoClient& mongo_;
  MysqlConnection& mysql_;
  const Mapper& mapper_;
  const Catalog& server_;
  Catalog work_;  // grows with what the documents need, as apply's would
  std::string collection_;
  std::string root_name_;
  const TableSchema* root_;  // on the server; null when the collection has no table yet
};

Result<std::optional<CollectionCheck::Expected>> CollectionCheck::Map(const BsonDocument& doc,
                                                                       std::vector<Finding>* unmappable) {
  bson_iter_t id;
  BsonDocument id_doc;
  if (bson_iter_init_find(&id, doc.get(), "_id")) bson_append_iter(id_doc.mutable_get(), "v", 1, &id);
  M2M_ASSIGN_OR_RETURN(ChangeEvent ev, MakeSnapshotRead(o_.mongo_database, collection_, doc.get()));
  auto mapped = mapper_.Map(ev, work_);
  if (!mapped.ok() || !mapped->document || mapped->document->kind != DocumentOpKind::kUpsert) {
    Finding f;
    f.difference = {DifferenceKind::kUnmappable, collection_, "_id=" + RelaxedJson(&id),
                    {mapped.ok() ? "maps to no row" : mapped.status().message()}};
    unmappable->push_back(std::move(f));
    return std::optional<Expected>();
  }
  const DocumentOp& op = *mapped->document;
  Expected e;
  e.label = op.label.substr(std::min(op.label.size(), collection_.size() + 1));
  e.id = std::move(id_doc);
  const TableSchema* root = work_.Find(op.table);
  for (const ColumnValue& cv : op.key) {
    const ColumnSchema* c = root->FindColumn(cv.column);
    e.key.push_back(StoredText(cv.value, c ? c->type : cv.value.type));
  }
  auto add = [&](const std::string& table, const Row& row, size_t skip) {
    const TableSchema* t = work_.Find(table);
    std::string row_key = RowKey(
        *t,
        [&](const std::string& column) -> std::optional<std::string> {
          for (const ColumnValue& cv : row) {
            if (AsciiLower(cv.column) == AsciiLower(column)) {
              const ColumnSchema* c = t->FindColumn(column);
              return StoredText(cv.value, c ? c->type : cv.value.type);
            }
          }
          return std::nullopt;
        },
        skip);
    e.rows[t->name][row_key] = row;
  };
  add(op.table, op.row, 0);
  for (const auto& [table, rows] : op.children) {
    for (const Row& row : rows) add(table, row, op.key.size());
  }
  return std::optional<Expected>(std::move(e));
}

std::string CollectionCheck::KeyColumns() const {
  std::string out;
  for (const std::string& k : root_->primary_key) out += (out.empty() ? "" : ",") + QuoteIdentifier(k);
  return root_->primary_key.size() == 1 ? out : "(" + out + ")";
}

std::string CollectionCheck::KeyLiterals(const KeyTexts& key) const {
  std::string out;
  for (size_t i = 0; i < key.size() && i < root_->primary_key.size(); ++i) {
    const ColumnSchema* c = root_->FindColumn(root_->primary_key[i]);
    SqlValue v;
    v.type = c->type;
    v.text = key[i];
    out += (out.empty() ? "" : ",") + SqlLiteral(v, c->type);
  }
  return root_->primary_key.size() == 1 ? out : "(" + out + ")";
}

std::string CollectionCheck::LabelOf(const KeyTexts& key) const {
  std::string out;
  for (size_t i = 0; i < key.size() && i < root_->primary_key.size(); ++i) {
    const ColumnSchema* c = root_->FindColumn(root_->primary_key[i]);
    std::string value;
    if (c->type == SqlType::kObjectId) value = "{\"$oid\":\"" + key[i] + "\"}";
    else if (c->type == SqlType::kBigInt) value = key[i];
    else if (nlohmann::json::accept(key[i])) value = key[i];  // KeyTextOf's JSON forms and integers
    else value = nlohmann::json(key[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += (out.empty() ? "" : " ") + DottedSource(*c) + "=" + value;
  }
  return out;
}

Result<std::map<std::string, KeyRows<StoredRow>>> CollectionCheck::ReadRows(const std::vector<KeyTexts>& keys) {
  std::map<std::string, KeyRows<StoredRow>> out;
  if (root_ == nullptr || keys.empty()) return out;
  std::string in;
  for (const KeyTexts& k : keys) in += (in.empty() ? "" : ",") + KeyLiterals(k);
  for (const TableSchema* t : server_.CollectionTables(collection_)) {
    std::string columns;
    for (const ColumnSchema& c : t->columns) columns += (columns.empty() ? "" : ",") + QuoteIdentifier(c.name);
    M2M_ASSIGN_OR_RETURN(auto rows, mysql_.Query("SELECT " + columns + " FROM " + QuoteIdentifier(t->name) +
                                                 " WHERE " + KeyColumns() + " IN (" + in + ")"));
    const size_t skip = t == root_ ? 0 : root_->primary_key.size();
    for (auto& row : rows) {
      StoredRow stored;
      for (size_t i = 0; i < row.size(); ++i) stored.emplace_back(t->columns[i].name, std::move(row[i]));
      auto text_of = [&](const std::string& column) -> std::optional<std::string> {
        for (const auto& [name, text] : stored) {
          if (AsciiLower(name) == AsciiLower(column)) return text;
        }
        return std::nullopt;
      };
      KeyTexts key;
      for (const std::string& k : root_->primary_key) key.push_back(text_of(k).value_or(""));
      std::string row_key = RowKey(*t, text_of, skip);
      out[Identity(key)][t->name][row_key] = std::move(stored);
    }
  }
  return out;
}

Result<std::vector<Finding>> CollectionCheck::Check(const std::vector<BsonDocument>& docs,
                                                    const std::vector<KeyTexts>& also) {
  std::vector<Finding> out;
  std::vector<Expected> expected;
  for (const BsonDocument& doc : docs) {
    M2M_ASSIGN_OR_RETURN(auto e, Map(doc, &out));
    if (e) expected.push_back(std::move(*e));
  }
  std::vector<KeyTexts> keys;
  std::set<std::string> seen;
  for (const Expected& e : expected) {
    if (seen.insert(Identity(e.key)).second) keys.push_back(e.key);
  }
  for (const KeyTexts& k : also) {
    if (seen.insert(Identity(k)).second) keys.push_back(k);
  }
  M2M_ASSIGN_OR_RETURN(auto stored, ReadRows(keys));
  std::map<std::string, const Expected*> by_key;
  for (const Expected& e : expected) by_key[Identity(e.key)] = &e;
  for (const KeyTexts& key : keys) {
    const std::string identity = Identity(key);
    auto e = by_key.find(identity);
    auto s = stored.find(identity);
    const bool has_row = s != stored.end() && s->second.count(root_name_) && !s->second[root_name_].empty();
    Finding f;
    f.key = key;
    if (e == by_key.end()) {
      if (!has_row) continue;
      f.difference = {DifferenceKind::kExtra, collection_, LabelOf(key), {}};
    } else {
      f.id = e->second->id;
      if (!has_row) {
        f.difference = {DifferenceKind::kMissing, collection_, e->second->label, {}};
      } else {
        auto details = CompareRows(e->second->rows, s->second, work_, root_name_);
        if (details.empty()) continue;
        f.difference = {DifferenceKind::kDifferent, collection_, e->second->label, std::move(details)};
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<std::vector<BsonDocument>> CollectionCheck::FindDocuments(const std::vector<KeyTexts>& keys,
                                                                 const std::vector<BsonDocument>& ids,
                                                                 bool keys_only) {
  bson_t by_key = BSON_INITIALIZER, opts = BSON_INITIALIZER, projection;
  bson_append_document_begin(&opts, "projection", -1, &projection);
  // An _id no range covers (a regex above all) is not asked for by value: MongoDB's $in matches a
  // regex against strings rather than as a value. The few such documents are read by type instead
  // (the snapshot's unranged chunk) and, like every candidate, kept only when their key matches.
  bool unranged = false;
  if (root_ != nullptr && !keys.empty()) {
    for (size_t i = 0; i < root_->primary_key.size(); ++i) {
      const ColumnSchema* c = root_->FindColumn(root_->primary_key[i]);
      const std::string dotted = DottedSource(*c);
      bson_append_int32(&projection, dotted.c_str(), -1, 1);
      bson_t field, in;
      bson_append_document_begin(&by_key, dotted.c_str(), -1, &field);
      bson_append_array_begin(&field, "$in", 3, &in);
      int n = 0;
      for (const KeyTexts& k : keys) {
        for (const BsonDocument& candidate : KeyCandidates(k[i], c->type)) {
          bson_iter_t it;
          if (!bson_iter_init_find(&it, candidate.get(), "v")) continue;
          if (dotted == "_id" && !capture::RangeCovers(bson_iter_type(&it))) {
            unranged = true;
            continue;
          }
          bson_append_iter(&in, std::to_string(n++).c_str(), -1, &it);
        }
      }
      bson_append_array_end(&field, &in);
      bson_append_document_end(&by_key, &field);
    }
  }
  bson_t filter = BSON_INITIALIZER, any, id_clause, id_in, id_field;
  bson_append_array_begin(&filter, "$or", 3, &any);
  int clauses = 0;
  if (!bson_empty(&by_key)) bson_append_document(&any, std::to_string(clauses++).c_str(), -1, &by_key);
  if (unranged) {
    bson_t clause;
    bson_append_document_begin(&any, std::to_string(clauses++).c_str(), -1, &clause);
    capture::AppendChunkFilter(&clause, {capture::kUnrangedClass, std::nullopt, std::nullopt});
    bson_append_document_end(&any, &clause);
  }
  if (!ids.empty()) {
    bson_append_document_begin(&any, std::to_string(clauses++).c_str(), -1, &id_clause);
    bson_append_document_begin(&id_clause, "_id", 3, &id_field);
    bson_append_array_begin(&id_field, "$in", 3, &id_in);
    int n = 0;
    for (const BsonDocument& id : ids) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, id.get(), "v")) bson_append_iter(&id_in, std::to_string(n++).c_str(), -1, &it);
    }
    bson_append_array_end(&id_field, &id_in);
    bson_append_document_end(&id_clause, &id_field);
    bson_append_document_end(&any, &id_clause);
  }
  bson_append_array_end(&filter, &any);
  bson_append_document_end(&opts, &projection);
  bson_destroy(&by_key);
  std::vector<BsonDocument> docs;
  if (clauses == 0) {
    bson_destroy(&filter);
    bson_destroy(&opts);
    return docs;
  }
  mongoc_collection_t* coll = Collection();
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll, &filter, keys_only ? &opts : nullptr, nullptr);
  const bson_t* doc;
  while (mongoc_cursor_next(cursor, &doc)) docs.emplace_back(doc);
  bson_error_t error;
  const bson_t* reply = nullptr;
  Status st;
  if (mongoc_cursor_error_document(cursor, &error, &reply)) {
    st = MongoStatus(error, "looking up documents of " + o_.mongo_database + "." + collection_, reply);
  }
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(coll);
  bson_destroy(&filter);
  bson_destroy(&opts);
  if (!st.ok()) return st;
  return docs;
}

Status CollectionCheck::FindExtras(int64_t total, std::vector<Finding>* out) {
  if (root_ == nullptr) return Status::OK();
  auto last_progress = Clock::now();
  std::string columns;
  for (const std::string& k : root_->primary_key) columns += (columns.empty() ? "" : ",") + QuoteIdentifier(k);
  // A key too long for its column was cut and hashed there: the documents are looked up by the whole
  // text, which the key's full-value column holds (NULL when the key column has it all).
  std::string lookup_columns;
  for (const std::string& k : root_->primary_key) {
    const ColumnSchema* full = root_->FindSource("#full " + root_->FindColumn(k)->source);
    lookup_columns += "," + (full ? QuoteIdentifier(full->name) : std::string("NULL"));
  }
  std::optional<KeyTexts> last;
  for (uint64_t page = 0;; ++page) {
    std::string sql = "SELECT " + columns + lookup_columns + " FROM " + QuoteIdentifier(root_->name);
    if (last) sql += " WHERE " + KeyColumns() + " > " + KeyLiterals(*last);
    sql += " ORDER BY " + columns + " LIMIT " + std::to_string(o_.range_size);
    M2M_ASSIGN_OR_RETURN(auto rows, mysql_.Query(sql));
    if (rows.empty()) return Status::OK();
    std::vector<KeyTexts> keys, lookups;
    const size_t n = root_->primary_key.size();
    for (auto& row : rows) {
      KeyTexts k, lookup;
      for (size_t i = 0; i < n; ++i) {
        k.push_back(row[i].value_or(""));
        lookup.push_back(row[n + i] ? *row[n + i] : k.back());
      }
      keys.push_back(std::move(k));
      lookups.push_back(std::move(lookup));
    }
    last = keys.back();
    if (Clock::now() - last_progress >= o_.progress_interval) {
      last_progress = Clock::now();
      spdlog::info("verify {}: looking for extra rows: {} of {} keys", collection_,
                   page * static_cast<uint64_t>(o_.range_size), total);
    }
    if (Sampled(page, o_.sample, o_.seed + 1)) {
      M2M_ASSIGN_OR_RETURN(auto docs, FindDocuments(lookups, {}, true));
      std::set<std::string> present;
      std::vector<Finding> ignored;
      for (const BsonDocument& doc : docs) {
        M2M_ASSIGN_OR_RETURN(auto e, Map(doc, &ignored));
        if (e) present.insert(Identity(e->key));
      }
      for (const KeyTexts& k : keys) {
        if (present.count(Identity(k))) continue;
        Finding f;
        f.key = k;
        f.difference = {DifferenceKind::kExtra, collection_, LabelOf(k), {}};
        out->push_back(std::move(f));
      }
    }
    if (rows.size() < static_cast<size_t>(o_.range_size)) return Status::OK();
  }
}

Result<int64_t> CollectionCheck::MongoCount() {
  mongoc_collection_t* coll = Collection();
  bson_t filter = BSON_INITIALIZER;
  bson_t reply;
  bson_error_t error;
  int64_t n = mongoc_collection_count_documents(coll, &filter, nullptr, nullptr, &reply, &error);
  Status st = n < 0 ? MongoStatus(error, "counting " + o_.mongo_database + "." + collection_, &reply) : Status::OK();
  bson_destroy(&reply);
  mongoc_collection_destroy(coll);
  if (!st.ok()) return st;
  return n;
}

Result<int64_t> CollectionCheck::MysqlCount() {
  if (root_ == nullptr) return int64_t{0};
  M2M_ASSIGN_OR_RETURN(auto rows, mysql_.Query("SELECT COUNT(*) FROM " + QuoteIdentifier(root_->name)));
  return rows.empty() || !rows[0][0] ? int64_t{0} : std::stoll(*rows[0][0]);
}

// Walks one collection; appends its findings.
Status WalkCollection(const VerifyOptions& o, CollectionCheck& check, CollectionSummary* summary,
                      std::vector<Finding>* findings) {
  const auto start = Clock::now();
  auto last_progress = start;
  const Namespace ns{o.mongo_database, summary->collection};
  M2M_ASSIGN_OR_RETURN(auto plan, capture::PlanSnapshot(check.Mongo(), ns, o.range_size));
  spdlog::info("verify {}: {} documents in {} ranges, planned in {:.1f} s", summary->collection, plan.documents,
               plan.chunks.size(), std::chrono::duration<double>(Clock::now() - start).count());
  summary->mongo_documents = plan.documents;
  M2M_ASSIGN_OR_RETURN(summary->mysql_rows, check.MysqlCount());
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    if (!Sampled(i, o.sample, o.seed)) continue;
    M2M_ASSIGN_OR_RETURN(auto docs, capture::ReadChunk(check.Mongo(), ns, plan.chunks[i]));
    M2M_ASSIGN_OR_RETURN(auto found, check.Check(docs, {}));
    for (Finding& f : found) findings->push_back(std::move(f));
    summary->checked += static_cast<int64_t>(docs.size());
    auto now = Clock::now();
    if (now - last_progress >= o.progress_interval) {
      last_progress = now;
      double s = std::chrono::duration<double>(now - start).count();
      spdlog::info("verify {}: {} of {} documents checked ({:.0f}/s), {} differing so far", summary->collection,
                   summary->checked, plan.documents, summary->checked / std::max(s, 1e-3), findings->size());
    }
  }
  spdlog::info("verify {}: {} documents compared after {:.1f} s; looking for extra rows", summary->collection,
               summary->checked, std::chrono::duration<double>(Clock::now() - start).count());
  M2M_RETURN_NOT_OK(check.FindExtras(summary->mysql_rows, findings));
  if (o.sample < 1.0 && summary->mongo_documents != summary->mysql_rows) {
    Finding f;
    f.difference = {DifferenceKind::kCount, summary->collection, "",
                    {"MongoDB " + std::to_string(summary->mongo_documents) + " documents, MySQL " +
                     std::to_string(summary->mysql_rows) + " rows"}};
    findings->push_back(std::move(f));
  }
  summary->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return Status::OK();
}

// Checks the findings of one collection again; returns those still standing.
Result<std::vector<Finding>> Recheck(CollectionCheck& check, std::vector<Finding> findings) {
  std::vector<Finding> out;
  std::vector<KeyTexts> keys;
  std::vector<BsonDocument> ids;
  std::set<std::string> wanted;
  bool recount = false;
  for (Finding& f : findings) {
    if (f.difference.kind == DifferenceKind::kCount) {
      recount = true;
    } else if (f.key.empty()) {
      out.push_back(std::move(f));  // unmappable: the document itself must change first
    } else {
      keys.push_back(f.key);
      wanted.insert(Identity(f.key));
      if (f.id) ids.push_back(*f.id);
    }
  }
  if (!keys.empty()) {
    M2M_ASSIGN_OR_RETURN(auto docs, check.FindDocuments(keys, ids, false));
    M2M_ASSIGN_OR_RETURN(auto again, check.Check(docs, keys));
    for (Finding& f : again) {
      if (f.key.empty() || wanted.count(Identity(f.key))) out.push_back(std::move(f));
    }
  }
  if (recount) {
    M2M_ASSIGN_OR_RETURN(int64_t mongo, check.MongoCount());
    M2M_ASSIGN_OR_RETURN(int64_t mysql, check.MysqlCount());
    if (mongo != mysql) {
      Finding f;
      f.difference = {DifferenceKind::kCount, findings.front().difference.collection, "",
                      {"MongoDB " + std::to_string(mongo) + " documents, MySQL " + std::to_string(mysql) + " rows"}};
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace

Status VerifyOptions::Validate() const {
  M2M_RETURN_NOT_OK(mongo.Validate());
  M2M_RETURN_NOT_OK(mysql.Validate());
  M2M_RETURN_NOT_OK(mapping.Validate());
  if (mongo_database.empty()) return Status::Invalid("verify: the MongoDB database is required");
  if (mysql.database.empty()) return Status::Invalid("verify: the MySQL database is required");
  if (range_size <= 0) return Status::Invalid("verify: range_size must be positive");
  if (!(sample > 0.0 && sample <= 1.0)) return Status::Invalid("verify: sample must be in (0, 1]");
  if (recheck_after.count() < 0) return Status::Invalid("verify: recheck_after must not be negative");
  return Status::OK();
}

std::string_view DifferenceKindName(DifferenceKind kind) {
  switch (kind) {
    case DifferenceKind::kMissing: return "missing";
    case DifferenceKind::kExtra: return "extra";
    case DifferenceKind::kDifferent: return "different";
    case DifferenceKind::kUnmappable: return "unmappable";
    case DifferenceKind::kCount: return "count";
  }
  return "?";
}

std::string DescribeDifference(const Difference& d) {
  std::string out = std::string(DifferenceKindName(d.kind)) + " " + d.collection;
  if (!d.key.empty()) out += " " + d.key;
  for (size_t i = 0; i < d.details.size(); ++i) out += (i == 0 ? ": " : "; ") + d.details[i];
  return out;
}

Result<VerifyReport> Verify(const VerifyOptions& o) {
  M2M_RETURN_NOT_OK(o.Validate());
  M2M_ASSIGN_OR_RETURN(auto mongo, MongoClient::Connect(o.mongo));
  if (Status st = mongo->Ping(); !st.ok()) return st.WithContext("cannot reach MongoDB at " + RedactedUri(o.mongo.uri));
  M2M_ASSIGN_OR_RETURN(auto mysql, MysqlConnection::Connect(o.mysql));
  // The mapping as apply runs it against this server (TargetLimits::ForServer).
  MappingConfig mapping = o.mapping;
  M2M_ASSIGN_OR_RETURN(auto version, mysql->Query("SELECT VERSION()"));
  mapping.options.limits.max_json_depth =
      TargetLimits::ForServer(version.empty() ? "" : version[0][0].value_or("")).max_json_depth;
  M2M_ASSIGN_OR_RETURN(Mapper mapper, Mapper::Make(std::move(mapping)));
  M2M_ASSIGN_OR_RETURN(auto schema_rows, mysql->Query(InformationSchemaQuery(o.mysql.database)));
  M2M_ASSIGN_OR_RETURN(Catalog server, CatalogFromInformationSchema(schema_rows));

  capture::StreamOptions scope;
  scope.scope = capture::StreamScope::kDatabase;
  scope.database = o.mongo_database;
  M2M_ASSIGN_OR_RETURN(auto namespaces, capture::ListCollections(*mongo, scope));
  std::set<std::string> in_mongo, in_mysql;
  for (const Namespace& ns : namespaces) in_mongo.insert(ns.collection);
  for (const auto& [k, t] : server.tables()) {
    auto c = SourceCollection(t.source);
    if (c && t.source == TableSource(*c, {})) in_mysql.insert(*c);
  }
  std::vector<std::string> collections = o.collections;
  if (collections.empty()) {
    std::set<std::string> all = in_mongo;
    all.insert(in_mysql.begin(), in_mysql.end());
    collections.assign(all.begin(), all.end());
    if (collections.empty()) {
      return Status::Invalid("nothing to compare: MongoDB database " + o.mongo_database +
                             " has no collections and MySQL database " + o.mysql.database + " no mapped tables");
    }
  }
  for (const std::string& c : collections) {
    if (!in_mongo.count(c) && !in_mysql.count(c)) {
      return Status::Invalid("unknown collection " + c + ": MongoDB database " + o.mongo_database +
                             " has no such collection and MySQL database " + o.mysql.database +
                             " has no table for it");
    }
  }

  VerifyReport report;
  std::vector<std::unique_ptr<CollectionCheck>> checks;
  std::vector<std::vector<Finding>> findings(collections.size());
  size_t differing = 0;
  for (size_t i = 0; i < collections.size(); ++i) {
    checks.push_back(std::make_unique<CollectionCheck>(o, *mongo, *mysql, mapper, server, collections[i]));
    CollectionSummary summary;
    summary.collection = collections[i];
    summary.table = checks.back()->root_name();
    M2M_RETURN_NOT_OK(WalkCollection(o, *checks.back(), &summary, &findings[i]));
    differing += findings[i].size();
    report.collections.push_back(std::move(summary));
  }
  if (differing > 0 && o.recheck_after.count() > 0) {
    spdlog::info("verify: {} keys differ; checking them again for up to {:.0f} s, as changes in flight are applied",
                 differing, o.recheck_after.count() / 1000.0);
    // Checked again at growing intervals until none is left or recheck_after has passed: what is
    // still different then is not in flight.
    const auto deadline = Clock::now() + o.recheck_after;
    std::chrono::milliseconds pause{500};
    while (differing > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - Clock::now()));
      pause *= 2;
      differing = 0;
      for (size_t i = 0; i < collections.size(); ++i) {
        if (findings[i].empty()) continue;
        const size_t before = findings[i].size();
        M2M_ASSIGN_OR_RETURN(findings[i], Recheck(*checks[i], std::move(findings[i])));
        report.resolved += static_cast<int64_t>(before) - static_cast<int64_t>(std::min(before, findings[i].size()));
        differing += findings[i].size();
      }
    }
  }
  for (auto& list : findings) {
    for (Finding& f : list) report.differences.push_back(std::move(f.difference));
  }
  return report;
}

}  // namespace m2m::verify
