// The target server's limits, as mapping rules (docs/mapping.md, "Limits and the overflow column").
//
// MySQL and MariaDB refuse a table or a row past fixed limits: 1017 columns in InnoDB, a table
// definition (column names and comments) of about 64 KB in MariaDB (errno 1117), 65,535 bytes of
// declared non-BLOB row data (1118), about 8,126 bytes of a row's inline part in an InnoDB page (1118
// under innodb_strict_mode), 16 key parts (1070), JSON nested 32 levels on MariaDB (json_valid fails,
// the column's CHECK refuses it: 4025) or 100 on MySQL 8. A valid MongoDB document can exceed any of
// them. The mapping keeps each table inside budgets set below those limits: a field that would push
// its table past a budget is kept, losslessly, in the table's overflow JSON column instead of a column
// of its own; an array that would need a 17th key part stays a JSON value of its row; a JSON value
// nested deeper than the server takes is stored as text. The budgets leave room for later widenings
// of existing columns (a column widened to TEXT takes more inline bytes than an INT).
//
// The byte costs were measured on MariaDB 10.11 (InnoDB, DYNAMIC rows, utf8mb4, strict mode) by
// creating tables of each column type until the server refused; MySQL 8's limits are the same or
// wider.
//
// Thread safety: value types and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "m2m/sql_types.h"
#include "m2m/status.h"

namespace m2m {

struct ColumnSchema;

struct TargetLimits {
  // Columns a table may have, the overflow column included. InnoDB allows 1017. Default: 500
  int max_columns = 500;
  // Bytes of a table's definition: the sum over columns of name + comment + 18. MariaDB refuses a
  // table near 65,000 (errno 1117). Default: 56000
  int max_definition_bytes = 56000;
  // Bytes of a row's inline part in InnoDB (fixed-size columns at their size, variable-length and
  // BLOB/TEXT/JSON columns at 21, one bit per column). InnoDB refuses about 8,000. Default: 6500
  int max_inline_row_bytes = 6500;
  // Declared bytes of a row's non-BLOB columns (a VARCHAR(255) in utf8mb4 counts 1,022). MySQL
  // refuses 65,535. Default: 60000
  int max_declared_row_bytes = 60000;
  // Key parts of a primary key. A child table's key is the root key plus one index per array
  // level, so arrays nested deeper than this stay JSON values of their row. MySQL's limit: 16
  int max_key_parts = 16;
  // The deepest JSON a JSON column takes: 31 on MariaDB (json_valid refuses 32 levels), 100 on
  // MySQL 8. A deeper value is stored as text, its column widened from JSON to LONGTEXT.
  // Default: 31 (ForServer picks the server's)
  int max_json_depth = 31;

  // The limits of the server whose SELECT VERSION() is `version`: MariaDB's, or MySQL 8's.
  static TargetLimits ForServer(std::string_view version);
  Status Validate() const;
};

// What one column costs against the budgets above.
struct ColumnCost {
  int definition = 0;
  int inline_bytes = 0;
  int declared_bytes = 0;
};
ColumnCost CostOf(SqlType type, size_t name_bytes, size_t comment_bytes);
ColumnCost CostOf(const ColumnSchema& column);

// A table's use of the budgets: its columns and the sum of their costs. Kept up to date as columns
// are added or change type, so checking one more column costs nothing per existing column.
struct TableUsage {
  int columns = 0;
  ColumnCost cost;

  void Add(const ColumnCost& c, int n = 1);
  void Remove(const ColumnCost& c) { Add({-c.definition, -c.inline_bytes, -c.declared_bytes}, -1); }
};
TableUsage UsageOf(const std::vector<ColumnSchema>& columns);

// Whether a table using `usage` stays within the budgets of `limits` (for a new column), or, with
// `widening`, within the server's own limits (for an existing column that changes type: the room
// the budgets keep free is there for it). The null bitmap is counted here.
bool WithinLimits(const TableUsage& usage, const TargetLimits& limits, bool widening);
inline bool WithinLimits(const std::vector<ColumnSchema>& columns, const TargetLimits& limits, bool widening) {
  return WithinLimits(UsageOf(columns), limits, widening);
}

// The nesting depth of JSON text: 0 for a scalar, 1 for [] or {}, 2 for [[]], ...
int JsonDepth(std::string_view json);

}  // namespace m2m
