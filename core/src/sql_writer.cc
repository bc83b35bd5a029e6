#include "m2m/sql_writer.h"

#include <algorithm>
#include <set>

#include "m2m/identifiers.h"

namespace m2m {
namespace {

std::string ColumnDdl(const ColumnSchema& c, bool key) {
  return QuoteIdentifier(c.name) + " " + c.TypeDdl() + (key ? " NOT NULL" : " NULL") + " COMMENT " +
         QuoteString(c.Comment());
}

bool IsKey(const std::vector<std::string>& pk, const std::string& name) {
  return std::find(pk.begin(), pk.end(), name) != pk.end();
}

SqlType TypeOf(const TableSchema* t, const std::string& column, const SqlValue& v) {
  const ColumnSchema* c = t ? t->FindColumn(column) : nullptr;
  return c ? c->type : v.type;
}

// Builds "<head><item>,<item>...<tail>" statements no longer than the limit (but at least one item).
class Chunker {
 public:
  Chunker(std::vector<std::string>* out, size_t limit, std::string head, std::string tail)
      : out_(out), limit_(limit), head_(std::move(head)), tail_(std::move(tail)) {}
  ~Chunker() { Flush(); }
  void Add(const std::string& item) {
    if (!body_.empty() && head_.size() + body_.size() + 1 + item.size() + tail_.size() > limit_) Flush();
    if (!body_.empty()) body_ += ',';
    body_ += item;
  }

 private:
  void Flush() {
    if (!body_.empty()) out_->push_back(head_ + body_ + tail_);
    body_.clear();
  }
  std::vector<std::string>* out_;
  size_t limit_;
  std::string head_, tail_, body_;
};

std::string Tuple(const std::vector<std::string>& items) {
  std::string out = "(";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + ")";
}

// Rows of `table` whose key columns (named as in the root) match `keys`.
void RenderDelete(const TableSchema* table, const std::string& name, const std::vector<const Row*>& keys,
                  const SqlOptions& o, std::vector<std::string>* out) {
  if (keys.empty()) return;
  const Row& first = *keys.front();
  std::vector<std::string> cols;
  for (const ColumnValue& cv : first) cols.push_back(QuoteIdentifier(cv.column));
  bool composite = cols.size() > 1;
  Chunker chunk(out, o.max_statement_bytes,
                "DELETE FROM " + QuoteIdentifier(name) + " WHERE " + (composite ? Tuple(cols) : cols[0]) + " IN (",
                ")");
  for (const Row* key : keys) {
    std::vector<std::string> lits;
    for (const ColumnValue& cv : *key) lits.push_back(SqlLiteral(cv.value, TypeOf(table, cv.column, cv.value)));
    chunk.Add(composite ? Tuple(lits) : lits[0]);
  }
}

void RenderInsert(const TableSchema& table, const std::vector<const Row*>& rows, bool upsert,
                  const SqlOptions& o, std::vector<std::string>* out) {
  if (rows.empty()) return;
  std::vector<std::string> cols;
  std::string update;
  for (const ColumnSchema& c : table.columns) {
    cols.push_back(QuoteIdentifier(c.name));
    if (!IsKey(table.primary_key, c.name)) {
      update += (update.empty() ? "" : ",") + cols.back() + "=VALUES(" + cols.back() + ")";
    }
  }
  if (update.empty()) update = cols[0] + "=" + cols[0];  // key-only table: nothing to change
  Chunker chunk(out, o.max_statement_bytes, "INSERT INTO " + QuoteIdentifier(table.name) + " " + Tuple(cols) + " VALUES ",
                upsert ? " ON DUPLICATE KEY UPDATE " + update : "");
  for (const Row* row : rows) {
    std::vector<std::string> lits;
    for (const ColumnSchema& c : table.columns) {
      auto it = std::find_if(row->rbegin(), row->rend(), [&](const ColumnValue& cv) { return AsciiLower(cv.column) == AsciiLower(c.name); });
      lits.push_back(it == row->rend() ? "NULL" : SqlLiteral(it->value, c.type));
    }
    chunk.Add(Tuple(lits));
  }
}

std::string RenderUpdate(const TableSchema* table, const DocumentOp& op) {
  std::string sql = "UPDATE " + QuoteIdentifier(op.table) + " SET ";
  for (size_t i = 0; i < op.set.size(); ++i) {
    const ColumnValue& cv = op.set[i];
    sql += (i ? "," : "") + QuoteIdentifier(cv.column) + "=" + SqlLiteral(cv.value, TypeOf(table, cv.column, cv.value));
  }
  sql += " WHERE ";
  for (size_t i = 0; i < op.key.size(); ++i) {
    const ColumnValue& cv = op.key[i];
    sql += (i ? " AND " : "") + QuoteIdentifier(cv.column) + "=" + SqlLiteral(cv.value, TypeOf(table, cv.column, cv.value));
  }
  return sql;
}

const TableSchema* Snapshot(const Batch::Segment& seg, const std::string& name) {
  auto it = seg.tables.find(name);
  return it == seg.tables.end() ? nullptr : &it->second;
}

void RenderCollectionOp(const CollectionOp& op, std::vector<std::string>* out) {
  if (!op.propagate || op.tables.empty()) return;
  if (op.kind == CollectionOpKind::kRename) {
    // A rename replayed after a crash between RENAME TABLE and the COMMENTs finds its tables already
    // under their new names (their comments still name the old collection): only the comments remain.
    std::string pairs;
    for (const auto& [from, to, source] : op.renames) {
      if (from == to) continue;
      pairs += (pairs.empty() ? "" : ", ") + QuoteIdentifier(from) + " TO " + QuoteIdentifier(to);
    }
    if (!pairs.empty()) out->push_back("RENAME TABLE " + pairs);
    // Children first, the root last: until the root's comment changes, a replay still sees the rename
    // as not done and finishes it (Mapper::Map takes children already re-commented as its own).
    for (auto r = op.renames.rbegin(); r != op.renames.rend(); ++r) {
      out->push_back("ALTER TABLE " + QuoteIdentifier(std::get<1>(*r)) + " COMMENT=" + QuoteString(std::get<2>(*r)));
    }
    return;
  }
  std::string sql = "DROP TABLE IF EXISTS ";
  for (size_t i = 0; i < op.tables.size(); ++i) sql += (i ? ", " : "") + QuoteIdentifier(op.tables[i]);
  out->push_back(sql);
}

}  // namespace

Status SqlOptions::Validate() const {
  if (max_statement_bytes < 1024) return Status::Invalid("sql: max_statement_bytes must be at least 1024");
  return Status::OK();
}

std::vector<std::string> RenderSchemaChange(const SchemaChange& ch, const SqlOptions& o) {
  const std::string table = QuoteIdentifier(ch.table);
  switch (ch.kind) {
    case SchemaChangeKind::kCreateTable: {
      std::string sql = "CREATE TABLE IF NOT EXISTS " + table + " (";
      for (const ColumnSchema& c : ch.columns) sql += ColumnDdl(c, IsKey(ch.primary_key, c.name)) + ", ";
      std::vector<std::string> pk;
      for (const std::string& k : ch.primary_key) pk.push_back(QuoteIdentifier(k));
      sql += "PRIMARY KEY " + Tuple(pk) + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT=" +
             QuoteString(ch.table_source);
      return {sql};
    }
    case SchemaChangeKind::kAddColumns: {
      std::string sql = "ALTER TABLE " + table + " ";
      for (size_t i = 0; i < ch.columns.size(); ++i) sql += (i ? ", " : "") + ("ADD COLUMN " + ColumnDdl(ch.columns[i], false));
      if (o.instant_add_column) sql += ", ALGORITHM=INSTANT";
      return {sql};
    }
    case SchemaChangeKind::kModifyColumn: {
      const ColumnSchema& c = ch.columns.at(0);
      return {"ALTER TABLE " + table + " MODIFY COLUMN " + ColumnDdl(c, IsKey(ch.primary_key, c.name))};
    }
  }
  return {};
}

std::string DescribeCollectionOp(const CollectionOp& op) {
  std::string what = op.kind == CollectionOpKind::kRename ? "rename " + op.collection + " -> " + op.to_collection
                     : op.kind == CollectionOpKind::kDrop ? "drop " + op.collection
                                                          : std::string("dropDatabase");
  std::string tables;
  for (const std::string& t : op.tables) tables += (tables.empty() ? "" : ", ") + t;
  return what + (op.propagate ? " applied to tables: " : " ignored (kept tables: ") + tables + (op.propagate ? "" : ")");
}

Result<SegmentSql> RenderSegment(const Batch::Segment& seg, const SqlOptions& o) {
  M2M_RETURN_NOT_OK(o.Validate());
  SegmentSql sql;
  for (const SchemaChange& ch : seg.schema_changes) {
    for (std::string& s : RenderSchemaChange(ch, o)) sql.schema.push_back(std::move(s));
  }
  std::vector<std::string>& out = sql.rows;
  struct PerRoot {
    std::vector<const DocumentOp*> upserts, deletes, updates;
    std::vector<std::string> descendants;
  };
  std::map<std::string, PerRoot> roots;
  for (const DocumentOp& d : seg.documents) {
    PerRoot& r = roots[d.table];
    switch (d.kind) {
      case DocumentOpKind::kUpsert: r.upserts.push_back(&d); break;
      case DocumentOpKind::kDelete: r.deletes.push_back(&d); break;
      case DocumentOpKind::kUpdate: r.updates.push_back(&d); break;
      case DocumentOpKind::kNeedsFullDocument:
        return Status::Invalid(d.label + ": needs the full document (" + d.reason + ")");
      case DocumentOpKind::kNone: break;
    }
    if (d.descendants.size() > r.descendants.size()) r.descendants = d.descendants;
  }
  for (const auto& [name, r] : roots) {
    std::vector<const Row*> cleared, deleted;
    for (const DocumentOp* d : r.upserts) cleared.push_back(&d->key);
    for (const DocumentOp* d : r.deletes) {
      cleared.push_back(&d->key);
      deleted.push_back(&d->key);
    }
    for (const std::string& child : r.descendants) RenderDelete(Snapshot(seg, child), child, cleared, o, &out);
    RenderDelete(Snapshot(seg, name), name, deleted, o, &out);
  }
  for (const auto& [name, r] : roots) {
    const TableSchema* root = Snapshot(seg, name);
    if (root == nullptr) continue;
    std::vector<const Row*> rows;
    std::map<std::string, std::vector<const Row*>> children;
    for (const DocumentOp* d : r.upserts) {
      rows.push_back(&d->row);
      for (const auto& [child, child_rows] : d->children) {
        for (const Row& row : child_rows) children[child].push_back(&row);
      }
    }
    RenderInsert(*root, rows, true, o, &out);
    for (const auto& [child, child_rows] : children) {
      if (const TableSchema* t = Snapshot(seg, child)) RenderInsert(*t, child_rows, false, o, &out);
    }
  }
  for (const auto& [name, r] : roots) {
    for (const DocumentOp* d : r.updates) out.push_back(RenderUpdate(Snapshot(seg, name), *d));
  }
  if (seg.collection) RenderCollectionOp(*seg.collection, &sql.collection);
  return sql;
}

Result<std::vector<std::string>> RenderBatch(const Batch& batch, const SqlOptions& o) {
  std::vector<std::string> out;
  for (const Batch::Segment& seg : batch.segments()) {
    M2M_ASSIGN_OR_RETURN(SegmentSql sql, RenderSegment(seg, o));
    for (auto* part : {&sql.schema, &sql.rows, &sql.collection}) {
      for (std::string& s : *part) out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace m2m
