// The tables the mapping writes to, as known to the mapping: columns, types, keys, and where each
// column's values come from.
//
// A column's source is stored in the column COMMENT and a table's in the table COMMENT, so the
// schema read back from information_schema after a restart maps the same fields to the same
// columns, even where names had to be disambiguated (docs/mapping.md, "Sources"):
//   field column           ["address","city"]   (JSON array of path components, compact)
//   JSON column            json ["tags"]        ("json " prefix: MariaDB reports JSON as longtext)
//   copied root key        #key ["_id"]         (in child tables)
//   array index            #idx1, #idx2, ...
//   scalar element value   #value
//   root table             ["orders"]           (JSON array: the collection name)
//   child table            ["orders",["items"],["parts"]]  (collection, then one path per array level)
//
// Thread safety: value types; a Catalog is used by one thread at a time, even for reading (its
// const CollectionTables fills a memo).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "m2m/sql_types.h"
#include "m2m/status.h"

namespace m2m {

struct ColumnSchema {
  std::string name;
  SqlType type = SqlType::kNull;
  // The spelling of a kOther type ("varchar(100)"); empty otherwise.
  std::string raw_type;
  std::string source;
  // A type set by the YAML mapping: never widened; a value that does not fit is a mapping error.
  bool fixed_type = false;

  // The column's DDL type: SqlTypeName(type), or raw_type for kOther.
  std::string TypeDdl() const;
  // The COMMENT text (the source, with the "json " prefix for JSON columns).
  std::string Comment() const;
};

struct TableSchema {
  std::string name;
  std::string source;
  std::vector<ColumnSchema> columns;  // in table order
  std::vector<std::string> primary_key;  // column names
  // False until the CREATE TABLE has been emitted (or the table was read from the server).
  bool created = false;

  const ColumnSchema* FindColumn(std::string_view name) const;  // case-insensitive
  ColumnSchema* FindColumn(std::string_view name);
  const ColumnSchema* FindSource(std::string_view source) const;
};

// All mapped tables of one MySQL database, by name (case-insensitive).
class Catalog {
 public:
  TableSchema* Find(std::string_view name);
  const TableSchema* Find(std::string_view name) const;
  const TableSchema* FindSource(std::string_view source) const;
  TableSchema& Add(TableSchema table);
  void Remove(std::string_view name);
  // Tables whose source belongs to `collection` (root first, then children by name).
  std::vector<const TableSchema*> CollectionTables(std::string_view collection) const;
  const std::map<std::string, TableSchema>& tables() const { return tables_; }

 private:
  std::map<std::string, TableSchema> tables_;  // key: lower-cased name
  // SourceCollection of each source seen: CollectionTables runs for every update event, and parsing
  // every table's source JSON each time was a quarter of apply's CPU. A pure function's memo, so it
  // never goes stale; it holds one entry per table source this catalog has had.
  mutable std::unordered_map<std::string, std::optional<std::string>> source_collections_;
};

// The query whose rows SchemaFromInformationSchema takes; `database` is quoted here.
std::string InformationSchemaQuery(std::string_view database);

// Builds the catalog from the rows of InformationSchemaQuery (TABLE_NAME, COLUMN_NAME, COLUMN_TYPE,
// COLUMN_KEY, COLUMN_COMMENT, TABLE_COMMENT; NULL as nullopt), marking every table created. Tables
// without a mapping source in their comment are kept too, so their names are never reused.
Result<Catalog> CatalogFromInformationSchema(
    const std::vector<std::vector<std::optional<std::string>>>& rows);

// The table source string (see header comment) for a collection and the array path levels below it.
std::string TableSource(std::string_view collection, const std::vector<std::vector<std::string>>& levels);
// The collection of a table source, or nullopt when `source` is not one.
std::optional<std::string> SourceCollection(std::string_view source);
// JSON array of components: ["a","b"].
std::string PathSource(const std::vector<std::string>& path);

}  // namespace m2m
