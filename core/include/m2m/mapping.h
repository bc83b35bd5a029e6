// The document-to-table mapping: options, per-collection YAML configuration, and the Mapper that
// turns ChangeEvents into row operations and the DDL they need.
//
// By default every collection maps automatically (docs/mapping.md): one table keyed by _id,
// sub-documents flattened into columns, arrays of documents into child tables, arrays of scalars
// into a JSON column, sub-documents keyed by data (ids, numbers, dates, or too many keys) into a JSON
// column. Whatever would take a table past the target server's limits (target_limits.h) is kept in
// the table's overflow JSON column, so every valid document lands. A YAML file can name tables and columns, fix types, exclude fields and choose
// the primary key per collection (format in docs/mapping.md, "YAML mapping").
//
// The Mapper is stateless; the schema it maps against is a Catalog the caller owns. Map() grows the
// catalog (new tables, new columns, widened types) and returns the DDL for exactly those changes,
// so the catalog always describes the database as it will be once the returned DDL has run. A
// failed Map() leaves the catalog untouched and returns kMapping naming the document, the field
// path and the cause.
//
// Thread safety: a Mapper is immutable and may be shared; each Catalog is used by one thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "m2m/change_event.h"
#include "m2m/row_ops.h"
#include "m2m/status.h"
#include "m2m/table_schema.h"
#include "m2m/target_limits.h"

namespace m2m {

enum class ScalarArrayMode { kJson, kTable };
enum class UnmappedFields { kAuto, kIgnore };
enum class DropPolicy { kKeep, kDrop };
enum class RenamePolicy { kRename, kKeep };
// How a sub-document is stored: by the automatic rule, always as one JSON column (a map keyed by
// data), or always flattened into columns.
enum class MapMode { kJson, kFlatten };

struct MappingOptions {
  // Joins the components of flattened names: address.city -> address_city; [A-Za-z0-9_]+.
  // Default: "_"
  std::string separator = "_";
  // Levels of sub-documents expanded into columns; a sub-document deeper than this is one JSON
  // column. 0 stores every sub-document as JSON. Default: 3
  int flatten_depth = 3;
  // Arrays without documents: one JSON column (kJson) or a child table with a `_value` column.
  // Default: kJson
  ScalarArrayMode scalar_arrays = ScalarArrayMode::kJson;
  // VARCHAR(255) columns per table before new text columns start as TEXT, keeping rows under
  // MySQL's 65535-byte limit. Default: 40
  int max_varchar_columns = 40;
  // A sub-document with more keys than this is a map keyed by data, stored as one JSON column
  // (docs/mapping.md, "Maps keyed by data"); so is one with a key that looks like data (an id, a
  // hash, a UUID, a number, a date). 0: only the key patterns decide. Default: 64
  int map_threshold = 64;
  // The target server's limits, as budgets per table; what does not fit goes to the overflow column.
  // Default: MariaDB's (apply and verify read the server's version: TargetLimits::ForServer)
  TargetLimits limits;
  // On a collection drop (or dropDatabase): keep the tables and only report it, or drop them.
  // Default: kKeep
  DropPolicy on_drop = DropPolicy::kKeep;
  // On a collection rename: rename the tables, or keep them (the new name maps to new tables).
  // Default: kRename
  RenamePolicy on_rename = RenamePolicy::kRename;

  Status Validate() const;
};

// One explicitly mapped field of a collection.
struct ColumnMapping {
  // Dotted path from the document root; the value at this path (documents and arrays as JSON).
  std::string source;
  // The column name, used as written (quoted). Default: derived from `source` as for automatic mapping
  std::string column;
  // A fixed type ("VARCHAR(100)", "BIGINT", ...): never widened; a value that does not fit is a
  // mapping error. Default: inferred and widened like automatic columns
  std::optional<std::string> type;
};

struct CollectionMapping {
  // Root table name. Default: the collection name, sanitized
  std::string table;
  // Dotted source paths of the key; deletes need them in the event's documentKey. Default: ["_id"]
  std::vector<std::string> primary_key = {"_id"};
  std::vector<ColumnMapping> columns;
  // Dotted paths left out entirely (with everything below them). Default: none
  std::vector<std::string> exclude;
  // Dotted root paths of sub-documents stored as one JSON column (json) or always flattened
  // (flatten), whatever the automatic rule says. Default: none
  std::map<std::string, MapMode> maps;
  // Fields neither in `columns` nor excluded: mapped automatically, or ignored. Default: kAuto
  UnmappedFields unmapped = UnmappedFields::kAuto;
};

struct MappingConfig {
  MappingOptions options;
  // By collection name; collections not listed map automatically.
  std::map<std::string, CollectionMapping> collections;
  // The result tables of the file's `transforms`: SQL statements only the Spark engine runs
  // (docs/spark.md, "Transforms"). Kept so that a sink which cannot run them refuses the mapping by
  // name rather than silently writing less. Default: none
  std::vector<std::string> spark_transforms;

  Status Validate() const;
};

// Parses the YAML mapping format (docs/mapping.md); the result is validated.
Result<MappingConfig> ParseMappingYaml(std::string_view yaml);
Result<MappingConfig> LoadMappingFile(const std::string& path);

class Mapper {
 public:
  static Result<Mapper> Make(MappingConfig config);

  // Maps one event (docs/mapping.md, "Events"):
  //   insert, read, replace, update with `after`  -> kUpsert (row and all child rows replaced)
  //   delete                                      -> kDelete (row and all child rows)
  //   update with only an updateDescription       -> kUpdate, or kNeedsFullDocument
  //   update with neither                         -> kNone (nothing is resurrected or lost)
  //   drop, rename, dropDatabase                  -> a CollectionOp
  // Events for collections whose root table is not in `catalog` and that carry no document map to
  // kNone: there is no row to delete or update.
  Result<MappedEvent> Map(const ChangeEvent& event, Catalog& catalog) const;

  // The root table of `collection`: its current name in `catalog`, else the name it would get.
  std::string RootTableName(std::string_view collection, const Catalog& catalog) const;

  const MappingConfig& config() const { return config_; }

 private:
  explicit Mapper(MappingConfig config) : config_(std::move(config)) {}
  std::string NewRootName(std::string_view collection,
                          const std::function<bool(std::string_view)>& taken) const;
  MappingConfig config_;
};

}  // namespace m2m
