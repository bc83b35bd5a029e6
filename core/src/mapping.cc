#include "m2m/mapping.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <memory>
#include <set>
#include <unordered_map>
#include <sstream>

#include "m2m/identifiers.h"

namespace m2m {
namespace {

using Path = std::vector<std::string>;

constexpr size_t kMaxColumnComment = 1024;
constexpr size_t kMaxTableComment = 2048;
constexpr std::string_view kKeyPrefix = "#key ";
constexpr std::string_view kOverflowSource = "#overflow";
// The whole key text of a root key column whose value was too long for it (docs/mapping.md, "Key
// columns"): "#full " then the key field's source.
constexpr std::string_view kFullKeyPrefix = "#full ";
constexpr std::string_view kOverflowName = "_overflow";

Path SplitDots(std::string_view s) {
  Path out;
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    out.emplace_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

std::string JoinDots(const Path& p) {
  std::string out;
  for (const std::string& c : p) out += (out.empty() ? "" : ".") + c;
  return out;
}

bool IsPrefix(const Path& prefix, const Path& path) {
  return prefix.size() <= path.size() && std::equal(prefix.begin(), prefix.end(), path.begin());
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A key that is a value rather than a name: a number, a hash or id in hex (ObjectId, MD5, SHA), a
// UUID, a date ("2024-01-31", "2024-01", "2024/01/31T10:00"). Sub-documents with such keys are maps.
bool LooksLikeData(std::string_view key) {
  std::string_view k = key;
  if (!k.empty() && k[0] == '-') k.remove_prefix(1);
  if (AllDigits(k)) return true;
  if (key.size() >= 16 && std::all_of(key.begin(), key.end(), IsHex)) return true;
  if (key.size() == 36) {
    bool uuid = true;
    for (size_t i = 0; i < 36 && uuid; ++i) {
      uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? key[i] == '-' : IsHex(key[i]);
    }
    if (uuid) return true;
  }
  auto digits = [&](size_t from, size_t n) { return key.size() >= from + n && AllDigits(key.substr(from, n)); };
  auto sep = [&](size_t at) { return key.size() > at && (key[at] == '-' || key[at] == '/' || key[at] == '_'); };
  if (digits(0, 4) && sep(4) && digits(5, 2)) {
    return key.size() == 7 || (sep(7) && digits(8, 2) && (key.size() == 10 || key[10] == 'T' || key[10] == ' '));
  }
  return false;
}

// The overflow column's JSON: the fields as they sit in the document (nested objects), in the order
// they were met; each value is its relaxed Extended JSON.
std::string RenderOverflow(const std::vector<std::pair<Path, std::string>>& fields) {
  struct Node {
    std::vector<std::pair<std::string, std::unique_ptr<Node>>> kids;  // in the order met
    std::unordered_map<std::string, Node*> by_name;
    const std::string* value = nullptr;
  };
  Node root;
  for (const auto& [path, value] : fields) {
    Node* n = &root;
    for (const std::string& c : path) {
      auto it = n->by_name.find(c);
      if (it == n->by_name.end()) {
        n->kids.emplace_back(c, std::make_unique<Node>());
        it = n->by_name.emplace(n->kids.back().first, n->kids.back().second.get()).first;
      }
      n = it->second;
    }
    n->value = &value;
  }
  std::string out;
  std::function<void(const Node&)> render = [&](const Node& n) {
    if (n.value) {
      out += *n.value;
      return;
    }
    out += '{';
    for (size_t i = 0; i < n.kids.size(); ++i) {
      if (i) out += ',';
      out += nlohmann::json(n.kids[i].first).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      out += ':';
      render(*n.kids[i].second);
    }
    out += '}';
  };
  render(root);
  return out;
}

// Sources are JSON written by PathSource and TableSource, and nearly none holds an escape: those are
// read here without a JSON parser (mapping reads the source of every column for every update event).
// Each reader takes what stands at text[i] and moves i past it; false when it is something else.
bool ReadPlainString(std::string_view text, size_t& i, std::string& out) {
  if (i >= text.size() || text[i] != '"') return false;
  size_t end = text.find('"', i + 1);
  if (end == std::string_view::npos) return false;
  out.assign(text.substr(i + 1, end - i - 1));
  i = end + 1;
  return true;
}

bool ReadPlainPath(std::string_view text, size_t& i, Path& out) {
  if (i >= text.size() || text[i] != '[') return false;
  ++i;
  if (i < text.size() && text[i] == ']') {
    ++i;
    return true;
  }
  for (;;) {
    if (!ReadPlainString(text, i, out.emplace_back())) return false;
    if (i < text.size() && text[i] == ',') {
      ++i;
    } else if (i < text.size() && text[i] == ']') {
      ++i;
      return true;
    } else {
      return false;
    }
  }
}

bool HasEscape(std::string_view text) { return text.find('\\') != std::string_view::npos; }

// The path of a field column's source; nullopt for structural columns (#key, #idx, #value).
std::optional<Path> SourcePath(std::string_view source) {
  if (!source.empty() && source[0] != '[') return std::nullopt;
  if (!HasEscape(source)) {
    Path out;
    size_t i = 0;
    if (ReadPlainPath(source, i, out) && i == source.size()) return out;
  }
  nlohmann::json j = nlohmann::json::parse(source, nullptr, false);
  if (!j.is_array()) return std::nullopt;
  Path out;
  for (const auto& c : j) {
    if (!c.is_string()) return std::nullopt;
    out.push_back(c.get<std::string>());
  }
  return out;
}

// The array levels of a table source (empty for a root table).
std::vector<Path> SourceLevels(std::string_view source) {
  if (!HasEscape(source)) {
    std::vector<Path> levels;
    std::string collection;
    size_t i = 1;
    bool plain = source.size() > 1 && source[0] == '[' && ReadPlainString(source, i, collection);
    while (plain && i < source.size() && source[i] == ',') {
      ++i;
      plain = ReadPlainPath(source, i, levels.emplace_back());
    }
    if (plain && i + 1 == source.size() && source[i] == ']') return levels;
  }
  nlohmann::json j = nlohmann::json::parse(source, nullptr, false);
  std::vector<Path> out;
  if (!j.is_array()) return out;
  for (size_t i = 1; i < j.size(); ++i) {
    Path p;
    for (const auto& c : j[i]) p.push_back(c.is_string() ? c.get<std::string>() : "");
    out.push_back(std::move(p));
  }
  return out;
}

std::string KeyLabel(const bson_t* key) {
  std::string out;
  bson_iter_t it;
  if (!bson_iter_init(&it, key)) return out;
  while (bson_iter_next(&it)) {
    out += (out.empty() ? "" : " ") + std::string(bson_iter_key(&it)) + "=" + RelaxedJson(&it);
  }
  return out;
}

bool VarcharAllowedIn(const TableSchema& t, int max_varchar_columns) {
  auto varchars = std::count_if(t.columns.begin(), t.columns.end(),
                                [](const ColumnSchema& x) { return x.type == SqlType::kVarchar; });
  return varchars < max_varchar_columns;
}

// Maps one event. Works on copies of the tables it touches and commits them to the catalog only when
// the whole event mapped, so a failure leaves the catalog as it was.
class EventMapper {
 public:
  EventMapper(const MappingConfig& config, const CollectionMapping& cm, Catalog& catalog,
              const std::string& collection, std::string root_name)
      : o_(config.options), cm_(cm), catalog_(catalog), collection_(collection),
        root_name_(std::move(root_name)), root_source_(TableSource(collection, {})) {}

  Result<DocumentOp> Upsert(const bson_t* doc, const bson_t* document_key);
  Result<DocumentOp> Delete(const bson_t* document_key);
  Result<DocumentOp> Update(const UpdateDescription& ud, const bson_t* document_key);
  void Commit(std::vector<SchemaChange>* changes);
  void PropagateKeyTypes();

 private:
  struct Work {
    std::optional<TableSchema> original;  // nullopt: created by this event
    TableSchema now;
  };
  // The table a row goes to and the key columns its child rows copy.
  struct Level {
    TableSchema* table;
    std::vector<Path> levels;
    std::vector<std::pair<std::string, ColumnValue>> key;  // (column source, value)
    std::string where;  // display path of the row: "" or "items.3"
    // Fields of the current row kept in its overflow column: (path in the row, relaxed JSON).
    std::vector<std::pair<Path, std::string>> overflow;
    // The root row's full-key columns (set only for keys that were cut and hashed).
    Row full_keys;
  };

  Status Fail(const std::string& field, const std::string& cause) const {
    return Status::Mapping(collection_ + " " + label_ + (field.empty() ? "" : " field " + field) +
                           ": " + cause);
  }
  std::string Display(const Level& lvl, const Path& path) const {
    std::string p = JoinDots(path);
    return lvl.where.empty() ? p : p.empty() ? lvl.where : lvl.where + "." + p;
  }

  TableSchema* FindTable(const std::string& source);
  Result<TableSchema*> GetTable(const std::string& source, std::string_view prefix, const Path& name_path);
  bool TableNameTaken(std::string_view name, std::string_view source) const;
  // Stores `v` in the row's column for `source`, creating or widening the column. `it` is given for
  // an automatic field's value: where a new column or a widening would take the table past its
  // budgets (o_.limits), the value goes to the row's overflow column instead.
  Status Put(Level& lvl, Row& row, const std::string& source, const Path& name_path,
             const std::string& explicit_name, SqlValue v, bool key, const std::string& field,
             const bson_iter_t* it = nullptr);
  // Adds the row's overflow column, when any field went there.
  Status FinishRow(Level& lvl, Row& row);
  bool IsMap(const Level& lvl, const Path& path, const bson_t* sub, bool root) const;
  Result<Level> RootLevel(const bson_t* doc, const bson_t* document_key, Row* key_row, bool create);
  Status WalkDocument(Level& lvl, Row& row, const bson_t* doc, Path& path, int depth, bool root);
  Status WalkField(Level& lvl, Row& row, const bson_iter_t* it, Path& path, int depth, bool root);
  Status EmitChildren(Level& lvl, const bson_iter_t* array, const Path& path);
  const ColumnMapping* ExplicitColumn(const std::string& dotted) const;
  bool VarcharAllowed(const TableSchema& t) const { return VarcharAllowedIn(t, o_.max_varchar_columns); }
  // A table's use of the limits, kept up to date by Put for every column it adds or retypes.
  struct Budget {
    TableUsage usage;
    bool has_overflow = false;
  };
  Budget& BudgetOf(const TableSchema& t) {
    auto [it, fresh] = budgets_.try_emplace(&t);
    if (fresh) {
      it->second.usage = UsageOf(t.columns);
      it->second.has_overflow = t.FindSource(kOverflowSource) != nullptr;
    }
    return it->second;
  }
  // Whether `t` with `change` (`columns` more) stays within the limits, with room for its overflow
  // column (WithinLimits).
  bool Fits(const TableSchema& t, const ColumnCost& change, int columns, bool widening) {
    const Budget& b = BudgetOf(t);
    TableUsage u = b.usage;
    u.Add(change, columns);
    if (!b.has_overflow) u.Add(CostOf(SqlType::kJson, kMaxIdentifierLength, kOverflowSource.size() + 5));
    return WithinLimits(u, o_.limits, widening);
  }
  std::optional<std::string> DeltaBlocker(const Path& path) const;
  void NullUnder(const Path& path, Row& row) const;

  const MappingOptions& o_;
  const CollectionMapping& cm_;
  Catalog& catalog_;
  const std::string& collection_;
  std::string root_name_;
  std::string root_source_;
  std::string label_;
  std::map<std::string, Work> work_;  // by lower-cased table name
  std::vector<std::string> work_order_;
  std::map<std::string, std::vector<Row>> children_;
  std::map<const TableSchema*, Budget> budgets_;  // by the address of a Work's table
};

TableSchema* EventMapper::FindTable(const std::string& source) {
  for (auto& [k, w] : work_) {
    if (w.now.source == source) return &w.now;
  }
  const TableSchema* t = catalog_.FindSource(source);
  if (t == nullptr) return nullptr;
  std::string k = AsciiLower(t->name);
  work_order_.push_back(k);
  Work& w = work_[k];
  w.original = *t;
  w.now = *t;
  return &w.now;
}

bool EventMapper::TableNameTaken(std::string_view name, std::string_view source) const {
  auto it = work_.find(AsciiLower(name));
  if (it != work_.end()) return it->second.now.source != source;
  const TableSchema* t = catalog_.Find(name);
  return t != nullptr && t->source != source;
}

Result<TableSchema*> EventMapper::GetTable(const std::string& source, std::string_view prefix,
                                           const Path& name_path) {
  if (TableSchema* t = FindTable(source)) return t;
  if (source.size() > kMaxTableComment) return Fail(JoinDots(name_path), "path too long to record in a table comment");
  TableSchema t;
  t.source = source;
  t.name = prefix.empty()
               ? root_name_
               : MakeIdentifier(prefix, name_path, o_.separator, source,
                                [&](std::string_view n) { return TableNameTaken(n, source); });
  std::string k = AsciiLower(t.name);
  work_order_.push_back(k);
  Work& w = work_[k];
  w.now = std::move(t);
  return &w.now;
}

const ColumnMapping* EventMapper::ExplicitColumn(const std::string& dotted) const {
  for (const ColumnMapping& c : cm_.columns) {
    if (c.source == dotted) return &c;
  }
  return nullptr;
}

Status EventMapper::Put(Level& lvl, Row& row, const std::string& source, const Path& name_path,
                        const std::string& explicit_name, SqlValue v, bool key,
                        const std::string& field, const bson_iter_t* it) {
  TableSchema& t = *lvl.table;
  if (v.type == SqlType::kJson && JsonDepth(v.text) > o_.limits.max_json_depth) v = TextValue(std::move(v.text));
  auto overflow = [&] {
    lvl.overflow.emplace_back(name_path, RelaxedJson(it));
    return Status::OK();
  };
  ColumnSchema* c = const_cast<ColumnSchema*>(t.FindSource(source));
  if (c == nullptr) {
    if (source.size() + 5 > kMaxColumnComment) {
      if (it) return overflow();
      return Fail(field, "path too long to record in a column comment");
    }
    if (it) {
      // Judged at the type it will have and the longest name it can get, before it is named.
      SqlType type = Widen(SqlType::kNull, v, VarcharAllowed(t));
      if (!Fits(t, CostOf(type, kMaxIdentifierLength, source.size() + 5), 1, false)) return overflow();
    }
    ColumnSchema col;
    col.source = source;
    // A fixed name (a structural column's `_value`, `_idx1`, or the YAML's) that a field column took
    // first gets the hash of its source too, like any colliding name: never a duplicate column.
    const bool fixed_name = !explicit_name.empty() && t.FindColumn(explicit_name) == nullptr;
    col.name = fixed_name ? explicit_name
                          : MakeIdentifier("", explicit_name.empty() ? name_path : Path{explicit_name}, o_.separator,
                                           source, [&](std::string_view n) { return t.FindColumn(n) != nullptr; });
    if (lvl.levels.empty() && !key) {
      std::string dotted = JoinDots(name_path);
      if (const ColumnMapping* m = ExplicitColumn(dotted); m && m->type) {
        col.type = ParseColumnType(*m->type, false);
        if (col.type == SqlType::kOther) col.raw_type = *m->type;
        col.fixed_type = true;
      }
    }
    Budget& b = BudgetOf(t);  // before the column is in `t`, so that it counts once
    t.columns.push_back(std::move(col));
    c = &t.columns.back();
    b.usage.Add(CostOf(*c));
    b.has_overflow |= c->source == kOverflowSource;
  }
  SqlType wanted = key ? WidenKey(c->type, v)
                       : Widen(c->type, v, VarcharAllowed(t) || c->type == SqlType::kVarchar);
  if (wanted != c->type) {
    if (c->fixed_type && c->type != SqlType::kNull) {
      return Fail(field, "value " + v.text.substr(0, 64) + " needs " + std::string(SqlTypeName(wanted)) +
                             " but column `" + c->name + "` has the fixed type " + c->TypeDdl());
    }
    const ColumnCost before = CostOf(*c);
    const SqlType before_type = c->type;
    c->type = wanted;
    const ColumnCost after = CostOf(*c);
    const ColumnCost change{after.definition - before.definition, after.inline_bytes - before.inline_bytes,
                            after.declared_bytes - before.declared_bytes};
    if (it && before_type != SqlType::kNull && !Fits(t, change, 0, true)) {
      c->type = before_type;
      return overflow();
    }
    BudgetOf(t).usage.Add(change, 0);
  }
  row.push_back({c->name, std::move(v)});
  return Status::OK();
}

Status EventMapper::FinishRow(Level& lvl, Row& row) {
  if (lvl.overflow.empty()) return Status::OK();
  SqlValue v;
  v.type = SqlType::kJson;
  v.text = RenderOverflow(lvl.overflow);
  lvl.overflow.clear();
  return Put(lvl, row, std::string(kOverflowSource), {std::string(kOverflowName)}, "", std::move(v), false,
             Display(lvl, {std::string(kOverflowName)}));
}

bool EventMapper::IsMap(const Level& lvl, const Path& path, const bson_t* sub, bool root) const {
  if (root) {
    auto it = cm_.maps.find(JoinDots(path));
    if (it != cm_.maps.end()) return it->second == MapMode::kJson;
  }
  // Decided by the sub-document alone, never by the schema so far: a row is then what its document
  // maps to whenever it is written or verified. Keys that spread over documents without looking
  // like data (user input) get columns until the table's budgets, then the overflow column.
  bson_iter_t it;
  int keys = 0;
  if (bson_iter_init(&it, sub)) {
    while (bson_iter_next(&it)) {
      if (LooksLikeData({bson_iter_key(&it), bson_iter_key_len(&it)})) return true;
      ++keys;
    }
  }
  return o_.map_threshold > 0 && keys > o_.map_threshold;
}

Result<EventMapper::Level> EventMapper::RootLevel(const bson_t* doc, const bson_t* document_key,
                                                  Row* key_row, bool create) {
  label_ = KeyLabel(document_key && !bson_empty(document_key) ? document_key : doc);
  Level lvl{nullptr, {}, {}, ""};
  if (create) {
    M2M_ASSIGN_OR_RETURN(lvl.table, GetTable(root_source_, "", {collection_}));
  } else {
    lvl.table = FindTable(root_source_);
    if (lvl.table == nullptr) return lvl;
  }
  bool fresh = lvl.table->primary_key.empty();
  for (const std::string& pk : cm_.primary_key) {
    bson_iter_t it, found;
    bool ok = false;
    for (const bson_t* d : {doc, document_key}) {
      if (!ok && d && bson_iter_init(&it, d) && bson_iter_find_descendant(&it, pk.c_str(), &found)) ok = true;
    }
    if (!ok) return Fail(pk, "the primary key field is missing");
    auto v = KeyValueFromBson(&found);
    if (!v.ok()) return Fail(pk, v.status().message());
    Path p = SplitDots(pk);
    const ColumnMapping* m = ExplicitColumn(pk);
    const bool hashed = v->text.find(kHashedKeyMark) != std::string::npos;
    M2M_RETURN_NOT_OK(Put(lvl, *key_row, PathSource(p), p, m ? m->column : "", std::move(*v), true, pk));
    lvl.key.emplace_back(PathSource(p), key_row->back());
    if (fresh) lvl.table->primary_key.push_back(key_row->back().column);
    if (create && hashed) {
      M2M_RETURN_NOT_OK(Put(lvl, lvl.full_keys, std::string(kFullKeyPrefix) + PathSource(p), {},
                            key_row->back().column + o_.separator + "full", TextValue(KeyTextOf(&found)), false, pk));
    }
  }
  return lvl;
}

Status EventMapper::WalkDocument(Level& lvl, Row& row, const bson_t* doc, Path& path, int depth, bool root) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return Fail(Display(lvl, path), "corrupt BSON");
  while (bson_iter_next(&it)) {
    path.emplace_back(bson_iter_key(&it), bson_iter_key_len(&it));
    Status st = WalkField(lvl, row, &it, path, depth, root);
    path.pop_back();
    M2M_RETURN_NOT_OK(st);
  }
  return Status::OK();
}

Status EventMapper::WalkField(Level& lvl, Row& row, const bson_iter_t* it, Path& path, int depth, bool root) {
  const std::string field = Display(lvl, path);
  const std::string source = PathSource(path);
  if (root) {
    const std::string dotted = JoinDots(path);
    if (std::find(cm_.exclude.begin(), cm_.exclude.end(), dotted) != cm_.exclude.end()) return Status::OK();
    if (std::find(cm_.primary_key.begin(), cm_.primary_key.end(), dotted) != cm_.primary_key.end()) {
      return Status::OK();
    }
    if (const ColumnMapping* m = ExplicitColumn(dotted)) {
      return Put(lvl, row, source, path, m->column, ValueFromBson(it), false, field);
    }
    if (cm_.unmapped == UnmappedFields::kIgnore &&
        std::none_of(cm_.columns.begin(), cm_.columns.end(),
                     [&](const ColumnMapping& c) { return c.source.starts_with(dotted + "."); })) {
      return Status::OK();
    }
  }
  switch (bson_iter_type(it)) {
    case BSON_TYPE_NULL:
      return Status::OK();
    case BSON_TYPE_DOCUMENT:
      if (depth < o_.flatten_depth) {
        uint32_t len = 0;
        const uint8_t* data = nullptr;
        bson_iter_document(it, &len, &data);
        bson_t sub;
        if (!bson_init_static(&sub, data, len)) return Fail(field, "corrupt BSON");
        if (!IsMap(lvl, path, &sub, root)) return WalkDocument(lvl, row, &sub, path, depth + 1, root);
      }
      break;
    case BSON_TYPE_ARRAY: {
      bson_iter_t el;
      bson_iter_recurse(it, &el);
      size_t n = 0;
      bool any_doc = false;
      while (bson_iter_next(&el)) {
        ++n;
        any_doc |= BSON_ITER_HOLDS_DOCUMENT(&el);
      }
      std::vector<Path> levels = lvl.levels;
      levels.push_back(path);
      // A child table's key is the root key plus an index per array level, and its comment records
      // every level's path: past either limit the array stays a JSON value of its row.
      bool child_fits = cm_.primary_key.size() + levels.size() <= static_cast<size_t>(o_.limits.max_key_parts) &&
                        TableSource(collection_, levels).size() <= kMaxTableComment;
      if (!child_fits) break;
      bool table_mode = o_.scalar_arrays == ScalarArrayMode::kTable;
      if (any_doc || (n > 0 && table_mode)) return EmitChildren(lvl, it, path);
      if (n == 0) {
        // No rows; if the path has a child table, the document's old rows there go.
        if (FindTable(TableSource(collection_, levels))) M2M_RETURN_NOT_OK(EmitChildren(lvl, it, path));
        // Otherwise an empty array is `[]` in the path's JSON column, made if need be, whether or not
        // documents of the path fill a child table: what a row holds (and whether the column exists)
        // must not depend on which document came first, which across Kafka partitions is the host's
        // scheduling. In table mode arrays have no JSON column: an empty one is just no rows.
        if (table_mode) return Status::OK();
      }
      break;
    }
    default:
      break;
  }
  return Put(lvl, row, source, path, "", ValueFromBson(it), false, field, it);
}

Status EventMapper::EmitChildren(Level& lvl, const bson_iter_t* array, const Path& path) {
  Level child{nullptr, lvl.levels, {}, ""};
  child.levels.push_back(path);
  M2M_ASSIGN_OR_RETURN(child.table, GetTable(TableSource(collection_, child.levels), lvl.table->name, path));
  bool fresh = child.table->primary_key.empty();
  const std::string idx_name = "_idx" + std::to_string(child.levels.size());
  std::vector<Row>& rows = children_[child.table->name];
  bson_iter_t el;
  bson_iter_recurse(array, &el);
  for (int64_t i = 0; bson_iter_next(&el); ++i) {
    Row row;
    const std::string where = Display(lvl, path) + "." + std::to_string(i);
    child.key.clear();
    for (const auto& [src, cv] : lvl.key) {
      std::string s = src.starts_with('#') ? src : std::string(kKeyPrefix) + src;
      M2M_RETURN_NOT_OK(Put(child, row, s, {}, cv.column, cv.value, true, where));
      child.key.emplace_back(s, row.back());
    }
    SqlValue idx;
    idx.type = SqlType::kInt;
    idx.text = std::to_string(i);
    idx.decimal = idx.text;
    M2M_RETURN_NOT_OK(Put(child, row, "#idx" + std::to_string(child.levels.size()), {}, idx_name, idx, true, where));
    child.key.emplace_back("#idx" + std::to_string(child.levels.size()), row.back());
    if (fresh) {
      for (const auto& [s, cv] : child.key) child.table->primary_key.push_back(cv.column);
      fresh = false;
    }
    child.where = where;
    if (BSON_ITER_HOLDS_DOCUMENT(&el)) {
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&el, &len, &data);
      bson_t sub;
      if (!bson_init_static(&sub, data, len)) return Fail(where, "corrupt BSON");
      Path sub_path;
      M2M_RETURN_NOT_OK(WalkDocument(child, row, &sub, sub_path, 0, false));
      M2M_RETURN_NOT_OK(FinishRow(child, row));
    } else if (!BSON_ITER_HOLDS_NULL(&el)) {
      M2M_RETURN_NOT_OK(Put(child, row, "#value", {}, "_value", ValueFromBson(&el), false, where));
    }
    rows.push_back(std::move(row));
  }
  return Status::OK();
}

Result<DocumentOp> EventMapper::Upsert(const bson_t* doc, const bson_t* document_key) {
  DocumentOp op;
  op.kind = DocumentOpKind::kUpsert;
  M2M_ASSIGN_OR_RETURN(Level root, RootLevel(doc, document_key, &op.key, true));
  op.row = op.key;
  op.row.insert(op.row.end(), root.full_keys.begin(), root.full_keys.end());
  Path path;
  M2M_RETURN_NOT_OK(WalkDocument(root, op.row, doc, path, 0, true));
  M2M_RETURN_NOT_OK(FinishRow(root, op.row));
  op.table = root.table->name;
  op.children = std::move(children_);
  return op;
}

Result<DocumentOp> EventMapper::Delete(const bson_t* document_key) {
  DocumentOp op;
  M2M_ASSIGN_OR_RETURN(Level root, RootLevel(nullptr, document_key, &op.key, false));
  if (root.table == nullptr) return op;  // nothing was ever written for this collection
  op.kind = DocumentOpKind::kDelete;
  op.table = root.table->name;
  return op;
}

std::optional<std::string> EventMapper::DeltaBlocker(const Path& path) const {
  const std::string dotted = JoinDots(path);
  for (size_t i = 1; i < path.size(); ++i) {
    if (AllDigits(path[i])) return "field " + dotted + " is an array position";
    if (LooksLikeData(path[i])) return "field " + dotted + " is inside a map keyed by data";
  }
  if (static_cast<int>(path.size()) > o_.flatten_depth + 1) {
    return "field " + dotted + " is inside a sub-document stored as JSON";
  }
  for (const ColumnMapping& c : cm_.columns) {
    if (dotted.starts_with(c.source + ".") || c.source.starts_with(dotted + ".")) {
      return "field " + dotted + " overlaps the mapped column " + c.source;
    }
  }
  const TableSchema* root = catalog_.FindSource(root_source_);
  for (size_t i = 1; i < path.size(); ++i) {
    const ColumnSchema* c = root->FindSource(PathSource(Path(path.begin(), path.begin() + i)));
    if (c && (c->type == SqlType::kJson || IsTextType(c->type))) {
      return "field " + dotted + " is inside the JSON column " + c->name;
    }
  }
  for (const TableSchema* t : catalog_.CollectionTables(collection_)) {
    std::vector<Path> levels = SourceLevels(t->source);
    if (!levels.empty() && (IsPrefix(path, levels[0]) || IsPrefix(levels[0], path))) {
      return "field " + dotted + " maps to the child table " + t->name;
    }
  }
  return std::nullopt;
}

void EventMapper::NullUnder(const Path& path, Row& row) const {
  const TableSchema* root = catalog_.FindSource(root_source_);
  for (const ColumnSchema& c : root->columns) {
    std::optional<Path> p = SourcePath(c.source);
    if (!p || !IsPrefix(path, *p)) continue;
    if (std::find(root->primary_key.begin(), root->primary_key.end(), c.name) != root->primary_key.end()) continue;
    if (std::none_of(row.begin(), row.end(), [&](const ColumnValue& cv) { return cv.column == c.name; })) {
      row.push_back({c.name, SqlValue{}});
    }
  }
}

Result<DocumentOp> EventMapper::Update(const UpdateDescription& ud, const bson_t* document_key) {
  DocumentOp op;
  M2M_ASSIGN_OR_RETURN(Level root, RootLevel(nullptr, document_key, &op.key, false));
  if (root.table == nullptr) return op;
  op.table = root.table->name;
  auto needs_full = [&](std::string reason) {
    op.kind = DocumentOpKind::kNeedsFullDocument;
    op.reason = std::move(reason);
    op.set.clear();
    return std::move(op);
  };
  if (!ud.truncated_arrays.empty()) return needs_full("field " + ud.truncated_arrays[0].field + " is a truncated array");
  // Which of this row's fields sit in the overflow column is not known here, so a delta could leave
  // a stale copy there.
  if (const ColumnSchema* c = root.table->FindSource(kOverflowSource)) {
    return needs_full("the table keeps fields in its overflow column " + c->name);
  }
  bool dotted_names = false;
  for (const TableSchema* t : catalog_.CollectionTables(collection_)) {
    for (const ColumnSchema& c : t->columns) dotted_names |= !c.source.starts_with('#') && c.source.find('.') != std::string::npos;
  }
  // The path an updatedFields or removedFields key names: MongoDB writes "a.b" both for the field b
  // inside a and for a field named "a.b"; disambiguatedPaths (6.1+, showExpandedEvents) says which.
  auto resolve = [&](const std::string& key, Path* path) -> std::optional<std::string> {
    bson_iter_t d, comp;
    if (!ud.disambiguated_paths.empty() && bson_iter_init_find(&d, ud.disambiguated_paths.get(), key.c_str()) &&
        BSON_ITER_HOLDS_ARRAY(&d) && bson_iter_recurse(&d, &comp)) {
      path->clear();
      while (bson_iter_next(&comp)) {
        if (!BSON_ITER_HOLDS_UTF8(&comp)) return "field " + key + " has an array position";
        path->emplace_back(bson_iter_utf8(&comp, nullptr));
      }
      return std::nullopt;
    }
    *path = SplitDots(key);
    if (dotted_names && path->size() > 1) {
      return "field " + key + " may name a field whose name contains '.' (no disambiguatedPaths)";
    }
    return std::nullopt;
  };
  bson_iter_t it;
  if (!bson_iter_init(&it, ud.updated_fields.get())) return Fail("", "corrupt updateDescription");
  while (bson_iter_next(&it)) {
    Path path;
    if (auto why = resolve(bson_iter_key(&it), &path)) return needs_full(*why);
    if (auto why = DeltaBlocker(path)) return needs_full(*why);
    Row part;
    M2M_RETURN_NOT_OK(WalkField(root, part, &it, path, static_cast<int>(path.size()) - 1, true));
    if (!children_.empty()) return needs_full("field " + JoinDots(path) + " holds an array of documents");
    if (!root.overflow.empty()) return needs_full("field " + JoinDots(path) + " does not fit its table's columns");
    // The whole sub-tree was replaced: its columns that the new value does not set are gone.
    bool excluded = std::find(cm_.exclude.begin(), cm_.exclude.end(), JoinDots(path)) != cm_.exclude.end();
    if (!excluded) NullUnder(path, part);
    for (ColumnValue& cv : part) op.set.push_back(std::move(cv));
  }
  for (const std::string& removed : ud.removed_fields) {
    Path path;
    if (auto why = resolve(removed, &path)) return needs_full(*why);
    if (auto why = DeltaBlocker(path)) return needs_full(*why);
    NullUnder(path, op.set);
  }
  // A removed field of a column made by this event is NULL anyway; keep the last value per column.
  Row dedup;
  for (ColumnValue& cv : op.set) {
    auto same = std::find_if(dedup.begin(), dedup.end(), [&](const ColumnValue& x) { return x.column == cv.column; });
    if (same == dedup.end()) dedup.push_back(std::move(cv)); else same->value = std::move(cv.value);
  }
  op.set = std::move(dedup);
  op.kind = op.set.empty() ? DocumentOpKind::kNone : DocumentOpKind::kUpdate;
  return op;
}

// A child table's key columns repeat its root table's primary key. When a root key column widens (an
// _id of a new type), the children's must widen with it, even when this event has no child rows:
// the statements that replace children are keyed on the new value too.
void EventMapper::PropagateKeyTypes() {
  const TableSchema* root = nullptr;
  for (auto& [k, w] : work_) {
    if (w.now.source == root_source_) root = &w.now;
  }
  if (root == nullptr) return;
  std::vector<std::string> children;
  for (const TableSchema* t : catalog_.CollectionTables(collection_)) children.push_back(t->source);
  for (auto& [k, w] : work_) children.push_back(w.now.source);
  for (const std::string& pk : root->primary_key) {
    const ColumnSchema* key = root->FindColumn(pk);
    if (key == nullptr) continue;
    std::string child_key_source = std::string(kKeyPrefix) + key->source;
    SqlType type = key->type;
    for (const std::string& source : children) {
      if (source == root_source_) continue;
      TableSchema* child = FindTable(source);
      if (child == nullptr) continue;
      for (ColumnSchema& c : child->columns) {
        if (c.source == child_key_source && c.type != type) c.type = type;
      }
    }
  }
}

void EventMapper::Commit(std::vector<SchemaChange>* changes) {
  PropagateKeyTypes();
  for (const std::string& k : work_order_) {
    Work& w = work_[k];
    TableSchema& t = w.now;
    if (!w.original) {
      if (t.columns.empty()) continue;
      t.created = true;
      changes->push_back({SchemaChangeKind::kCreateTable, t.name, t.source, t.columns, t.primary_key});
    } else {
      SchemaChange add{SchemaChangeKind::kAddColumns, t.name, "", {}, {}};
      // Columns are only ever appended while an event maps: the original ones are a prefix.
      for (size_t i = 0; i < t.columns.size(); ++i) {
        const ColumnSchema& c = t.columns[i];
        if (i >= w.original->columns.size()) {
          add.columns.push_back(c);
        } else if (w.original->columns[i].type != c.type) {
          changes->push_back({SchemaChangeKind::kModifyColumn, t.name, "", {c}, t.primary_key,
                              w.original->columns[i].type});
        }
      }
      if (!add.columns.empty()) changes->push_back(std::move(add));
    }
    catalog_.Add(t);
  }
}

}  // namespace

Status MappingOptions::Validate() const {
  if (separator.empty()) return Status::Invalid("mapping: separator must not be empty");
  bool changed = false;
  if (SanitizeComponent(separator, &changed) != separator || changed) {
    return Status::Invalid("mapping: separator may contain only A-Z, a-z, 0-9 and _");
  }
  if (flatten_depth < 0 || flatten_depth > 32) return Status::Invalid("mapping: flatten_depth must be 0..32");
  if (max_varchar_columns < 0) return Status::Invalid("mapping: max_varchar_columns must be >= 0");
  if (map_threshold < 0) return Status::Invalid("mapping: map_threshold must be >= 0");
  return limits.Validate();
}

Status MappingConfig::Validate() const {
  M2M_RETURN_NOT_OK(options.Validate());
  for (const auto& [name, cm] : collections) {
    const std::string where = "mapping: collection " + name + ": ";
    if (cm.table.size() > kMaxIdentifierLength) return Status::Invalid(where + "table name longer than 64");
    if (cm.primary_key.empty()) return Status::Invalid(where + "primary_key must not be empty");
    std::set<std::string> names;
    for (const ColumnMapping& c : cm.columns) {
      if (c.source.empty()) return Status::Invalid(where + "a column has no source");
      if (c.column.size() > kMaxIdentifierLength) return Status::Invalid(where + "column name longer than 64: " + c.column);
      if (!c.column.empty() && !names.insert(AsciiLower(c.column)).second) {
        return Status::Invalid(where + "column " + c.column + " is mapped twice (names are case-insensitive)");
      }
      if (c.type && ParseColumnType(*c.type, false) == SqlType::kNull) return Status::Invalid(where + "bad type");
    }
  }
  return Status::OK();
}

namespace {

// yaml-cpp reports errors by exception; they stop here.
Status ParseYamlInto(const YAML::Node& root, MappingConfig* config) {
  if (!root.IsMap()) return Status::Invalid("mapping: the document must be a map");
  MappingOptions& o = config->options;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    auto choice = [&](std::initializer_list<const char*> allowed) -> Result<int> {
      std::string s = v.as<std::string>();
      int i = 0;
      for (const char* a : allowed) {
        if (s == a) return i;
        ++i;
      }
      return Status::Invalid("mapping: " + key + ": unknown value '" + s + "'");
    };
    if (key == "separator") {
      o.separator = v.as<std::string>();
    } else if (key == "flatten_depth") {
      o.flatten_depth = v.as<int>();
    } else if (key == "max_varchar_columns") {
      o.max_varchar_columns = v.as<int>();
    } else if (key == "map_threshold") {
      o.map_threshold = v.as<int>();
    } else if (key == "max_columns") {
      o.limits.max_columns = v.as<int>();
    } else if (key == "scalar_arrays") {
      M2M_ASSIGN_OR_RETURN(int c, choice({"json", "table"}));
      o.scalar_arrays = static_cast<ScalarArrayMode>(c);
    } else if (key == "on_drop") {
      M2M_ASSIGN_OR_RETURN(int c, choice({"keep", "drop"}));
      o.on_drop = static_cast<DropPolicy>(c);
    } else if (key == "on_rename") {
      M2M_ASSIGN_OR_RETURN(int c, choice({"rename", "keep"}));
      o.on_rename = static_cast<RenamePolicy>(c);
    } else if (key == "collections") {
      for (const auto& ckv : v) {
        const std::string name = ckv.first.as<std::string>();
        CollectionMapping cm;
        for (const auto& f : ckv.second) {
          const std::string fk = f.first.as<std::string>();
          const YAML::Node& fv = f.second;
          if (fk == "table") {
            cm.table = fv.as<std::string>();
          } else if (fk == "primary_key") {
            cm.primary_key = fv.IsSequence() ? fv.as<std::vector<std::string>>()
                                             : std::vector<std::string>{fv.as<std::string>()};
          } else if (fk == "exclude") {
            cm.exclude = fv.as<std::vector<std::string>>();
          } else if (fk == "maps") {
            if (!fv.IsMap()) return Status::Invalid("mapping: " + name + ".maps: a map of path: json | flatten");
            for (const auto& m : fv) {
              std::string mode = m.second.as<std::string>();
              if (mode != "json" && mode != "flatten") {
                return Status::Invalid("mapping: " + name + ".maps." + m.first.as<std::string>() + ": json or flatten, not '" + mode + "'");
              }
              cm.maps[m.first.as<std::string>()] = mode == "json" ? MapMode::kJson : MapMode::kFlatten;
            }
          } else if (fk == "unmapped") {
            std::string s = fv.as<std::string>();
            if (s != "auto" && s != "ignore") return Status::Invalid("mapping: " + name + ".unmapped: auto or ignore");
            cm.unmapped = s == "auto" ? UnmappedFields::kAuto : UnmappedFields::kIgnore;
          } else if (fk == "columns") {
            for (const auto& col : fv) {
              ColumnMapping m;
              if (col.IsScalar()) {
                m.source = col.as<std::string>();
              } else {
                for (const auto& ck : col) {
                  const std::string k = ck.first.as<std::string>();
                  if (k == "source") m.source = ck.second.as<std::string>();
                  else if (k == "column") m.column = ck.second.as<std::string>();
                  else if (k == "type") m.type = ck.second.as<std::string>();
                  else return Status::Invalid("mapping: " + name + ".columns: unknown key " + k);
                }
              }
              cm.columns.push_back(std::move(m));
            }
          } else {
            return Status::Invalid("mapping: collection " + name + ": unknown key " + fk);
          }
        }
        config->collections[name] = std::move(cm);
      }
    } else if (key == "transforms") {
      if (!v.IsMap()) return Status::Invalid("mapping: transforms must be a map of result tables");
      for (const auto& t : v) config->spark_transforms.push_back(t.first.as<std::string>());
    } else {
      return Status::Invalid("mapping: unknown key " + key);
    }
  }
  return Status::OK();
}

}  // namespace

Result<MappingConfig> ParseMappingYaml(std::string_view yaml) {
  MappingConfig config;
  try {
    M2M_RETURN_NOT_OK(ParseYamlInto(YAML::Load(std::string(yaml)), &config));
  } catch (const YAML::Exception& e) {
    return Status::Invalid(std::string("mapping: ") + e.what());
  }
  M2M_RETURN_NOT_OK(config.Validate());
  return config;
}

Result<MappingConfig> LoadMappingFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError("cannot read mapping file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ParseMappingYaml(ss.str());
  if (!config.ok()) return config.status().WithContext(path);
  return config;
}

Result<Mapper> Mapper::Make(MappingConfig config) {
  M2M_RETURN_NOT_OK(config.Validate());
  return Mapper(std::move(config));
}

std::string Mapper::RootTableName(std::string_view collection, const Catalog& catalog) const {
  if (const TableSchema* t = catalog.FindSource(TableSource(collection, {}))) return t->name;
  return NewRootName(collection, [&](std::string_view n) { return catalog.Find(n) != nullptr; });
}

std::string Mapper::NewRootName(std::string_view collection,
                                const std::function<bool(std::string_view)>& taken) const {
  auto it = config_.collections.find(std::string(collection));
  if (it != config_.collections.end() && !it->second.table.empty()) return it->second.table;
  return MakeIdentifier("", {std::string(collection)}, config_.options.separator,
                        TableSource(collection, {}), taken);
}

Result<MappedEvent> Mapper::Map(const ChangeEvent& ev, Catalog& catalog) const {
  static const CollectionMapping kAutomatic;
  auto found = config_.collections.find(ev.collection);
  const CollectionMapping& cm = found == config_.collections.end() ? kAutomatic : found->second;
  MappedEvent out;
  switch (ev.kind) {
    case EventKind::kInvalidate:
      return out;
    case EventKind::kDrop:
    case EventKind::kDropDatabase: {
      CollectionOp op;
      op.kind = ev.kind == EventKind::kDrop ? CollectionOpKind::kDrop : CollectionOpKind::kDropDatabase;
      op.collection = ev.kind == EventKind::kDrop ? ev.collection : "";
      op.propagate = config_.options.on_drop == DropPolicy::kDrop;
      std::vector<const TableSchema*> tables;
      if (ev.kind == EventKind::kDrop) {
        tables = catalog.CollectionTables(ev.collection);
      } else {
        for (const auto& [k, t] : catalog.tables()) {
          if (SourceCollection(t.source)) tables.push_back(&t);
        }
      }
      for (auto t = tables.rbegin(); t != tables.rend(); ++t) op.tables.push_back((*t)->name);
      if (op.propagate) {
        for (const std::string& t : op.tables) catalog.Remove(t);
      }
      out.collection = std::move(op);
      return out;
    }
    case EventKind::kRename: {
      CollectionOp op;
      op.kind = CollectionOpKind::kRename;
      op.collection = ev.collection;
      op.to_collection = ev.rename_to_collection;
      op.propagate = config_.options.on_rename == RenamePolicy::kRename;
      std::vector<const TableSchema*> tables = catalog.CollectionTables(ev.collection);
      if (!op.propagate || tables.empty()) {
        out.collection = std::move(op);
        return out;
      }
      if (catalog.FindSource(TableSource(ev.rename_to_collection, {}))) {
        return Status::Mapping("rename " + ev.collection + " -> " + ev.rename_to_collection +
                               ": the target collection already has tables; drop them first");
      }
      // Child tables of the target without its root are this rename's own, re-commented before a
      // crash stopped it (the root's comment is written last): they finish with the rest.
      std::vector<const TableSchema*> recommented = catalog.CollectionTables(ev.rename_to_collection);
      tables.insert(tables.end(), recommented.begin(), recommented.end());
      auto ours = [&](const TableSchema* t) {
        auto c = SourceCollection(t->source);
        return c == ev.collection || c == ev.rename_to_collection;
      };
      // Parents before children, so a child's new name derives from its parent's new name.
      std::sort(tables.begin(), tables.end(), [](const TableSchema* a, const TableSchema* b) {
        return SourceLevels(a->source).size() < SourceLevels(b->source).size();
      });
      Catalog renamed;
      std::set<std::string> taken;
      std::map<std::string, std::string> new_by_source;  // new source -> new name
      for (const TableSchema* t : tables) {
        std::vector<Path> levels = SourceLevels(t->source);
        std::string source = TableSource(ev.rename_to_collection, levels);
        auto is_taken = [&](std::string_view n) {
          const TableSchema* other = catalog.Find(n);
          return taken.count(AsciiLower(n)) || (other && !ours(other));
        };
        std::string name;
        if (levels.empty()) {
          name = NewRootName(ev.rename_to_collection, is_taken);
        } else {
          std::vector<Path> parent_levels(levels.begin(), levels.end() - 1);
          name = MakeIdentifier(new_by_source[TableSource(ev.rename_to_collection, parent_levels)],
                                levels.back(), config_.options.separator, source, is_taken);
        }
        taken.insert(AsciiLower(name));
        new_by_source[source] = name;
        op.tables.push_back(t->name);
        op.renames.emplace_back(t->name, name, source);
        TableSchema copy = *t;
        copy.name = name;
        copy.source = source;
        renamed.Add(std::move(copy));
      }
      for (const std::string& old : op.tables) catalog.Remove(old);
      for (const auto& [k, t] : renamed.tables()) catalog.Add(t);
      out.collection = std::move(op);
      return out;
    }
    default:
      break;
  }
  EventMapper em(config_, cm, catalog, ev.collection, RootTableName(ev.collection, catalog));
  Result<DocumentOp> op = Status::Internal("unmapped event kind");
  if (ev.kind == EventKind::kDelete) {
    op = em.Delete(ev.document_key.get());
  } else if (ev.after) {
    op = em.Upsert(ev.after->get(), ev.document_key.get());
  } else if (ev.kind == EventKind::kUpdate && ev.update) {
    op = em.Update(*ev.update, ev.document_key.get());
  } else {
    op = DocumentOp{};  // no post-image and no description: the document is gone or unknown
  }
  if (!op.ok()) return op.status();
  em.Commit(&out.schema_changes);
  out.document = std::move(*op);
  if (out.document->kind == DocumentOpKind::kUpsert || out.document->kind == DocumentOpKind::kDelete) {
    for (const TableSchema* t : catalog.CollectionTables(ev.collection)) {
      if (!SourceLevels(t->source).empty()) out.document->descendants.push_back(t->name);
    }
    std::stable_sort(out.document->descendants.begin(), out.document->descendants.end(),
                     [&](const std::string& a, const std::string& b) {
                       return SourceLevels(catalog.Find(a)->source).size() > SourceLevels(catalog.Find(b)->source).size();
                     });
  }
  out.document->label = ev.collection + " " + KeyLabel(ev.document_key.empty() && ev.after ? ev.after->get()
                                                                                          : ev.document_key.get());
  return out;
}

}  // namespace m2m
