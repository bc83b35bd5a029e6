// Row operations: what one change event does to the mapped tables, and a Batch that coalesces the
// operations of many events so that each document key is written once per batch.
//
// The Mapper (mapping.h) produces a MappedEvent per ChangeEvent; the apply engine adds them to a
// Batch in event order and renders the Batch with sql_writer.h. Coalescing keeps the latest state
// of each key (docs/mapping.md, "Coalescing"); a collection-level operation (drop, rename) closes
// the current segment, so nothing is reordered across it.
//
// Thread safety: value types; a Batch is used by one thread at a time.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "m2m/sql_types.h"
#include "m2m/table_schema.h"

namespace m2m {

struct ColumnValue {
  std::string column;
  SqlValue value;
  friend bool operator==(const ColumnValue&, const ColumnValue&) = default;
};
using Row = std::vector<ColumnValue>;  // columns absent from a Row are NULL

enum class SchemaChangeKind { kCreateTable, kAddColumns, kModifyColumn };

// DDL the data needs, in the order it must run. The columns carry their final definition.
struct SchemaChange {
  SchemaChangeKind kind = SchemaChangeKind::kCreateTable;
  std::string table;
  std::string table_source;                // kCreateTable: the table COMMENT
  std::vector<ColumnSchema> columns;       // create: all; add: the new ones; modify: the one
  std::vector<std::string> primary_key;    // kCreateTable, kModifyColumn
  SqlType previous_type = SqlType::kNull;  // kModifyColumn: the type before
};

enum class DocumentOpKind {
  kNone,               // nothing to write (update without post-image or description, unknown table)
  kUpsert,             // replace the row and all its child rows
  kDelete,             // delete the row and all its child rows
  kUpdate,             // set some columns of an existing row (never creates one)
  kNeedsFullDocument,  // a delta that cannot be applied column-wise; see `reason`
};

// One document's effect on its root table and the root's descendant (child) tables.
struct DocumentOp {
  DocumentOpKind kind = DocumentOpKind::kNone;
  std::string table;  // the root table
  Row key;            // the root key columns, in primary key order
  // "orders _id={"$oid":"..."}": names the document in messages.
  std::string label;
  // kUpsert: the root row, key columns included.
  Row row;
  // kUpsert: the rows of each child table (by table name), key and index columns included.
  std::map<std::string, std::vector<Row>> children;
  // kUpsert, kDelete: every descendant table of the root, deepest first; all are emptied for the key.
  std::vector<std::string> descendants;
  // kUpdate: columns to set (removed fields set to NULL).
  Row set;
  // kNeedsFullDocument: why, naming the field path.
  std::string reason;
};

enum class CollectionOpKind { kDrop, kRename, kDropDatabase };

struct CollectionOp {
  CollectionOpKind kind = CollectionOpKind::kDrop;
  std::string collection;      // empty for kDropDatabase
  std::string to_collection;   // kRename
  // The mapped tables affected (children before their parents).
  std::vector<std::string> tables;
  // kRename when renames propagate: (old name, new name, new source), in `tables` order.
  std::vector<std::tuple<std::string, std::string, std::string>> renames;
  // kDrop/kDropDatabase: whether the tables are dropped (on_drop: drop); otherwise only logged.
  bool propagate = false;
};

struct MappedEvent {
  std::vector<SchemaChange> schema_changes;
  std::optional<DocumentOp> document;
  std::optional<CollectionOp> collection;
};

// A batch of mapped events, coalesced per (root table, key).
class Batch {
 public:
  // One run of document operations ended by at most one collection operation.
  struct Segment {
    std::vector<SchemaChange> schema_changes;
    std::vector<DocumentOp> documents;  // one per key, in order of the key's first appearance
    std::optional<CollectionOp> collection;
    // The definition of every table the documents touch, as of their last event.
    std::map<std::string, TableSchema> tables;
  };

  // `catalog` is the one the event was mapped with: the batch copies the definitions it needs.
  void Add(MappedEvent event, const Catalog& catalog);
  const std::vector<Segment>& segments() const { return segments_; }
  // The operations apply must resolve (fetch the document, then Add an upsert or a delete) before
  // rendering.
  std::vector<const DocumentOp*> NeedsFullDocument() const;
  bool empty() const { return segments_.empty(); }

 private:
  Segment& Open();
  std::vector<Segment> segments_;
  void Reindex(Segment& seg, const Catalog& catalog);
  std::map<std::pair<std::string, std::string>, size_t> index_;  // of the last segment's documents
};

// The key as SQL literals, joined: identifies a document within its table.
std::string KeyText(const Row& key, const TableSchema* table);

}  // namespace m2m
