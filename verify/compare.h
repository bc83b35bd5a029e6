// Comparing what one document maps to with what MySQL holds for its key: the pure part of verify.
//
// Expected rows come from the Mapper (mapping.h), so verify and apply can never disagree about which
// tables, columns and values a document makes. Values are compared in the form MySQL returns them
// (StoredText, sql_types.h), with three allowances for forms a correct replica legitimately holds:
//   - JSON columns compare as parsed JSON: MySQL 8 normalises JSON (key order, spacing) on write;
//   - DOUBLE columns compare as numbers: servers spell some doubles differently (1e20, 1e+20);
//   - a text column may hold a number in DECIMAL(65,30)'s padded form: the column was DECIMAL when
//     the row was written and a later value widened it to text, and MySQL's ALTER kept that form.
//
// Thread safety: pure functions and value types.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "m2m/row_ops.h"
#include "m2m/sql_types.h"
#include "m2m/table_schema.h"

namespace m2m::verify {

// Whether `actual` (MySQL's text for a column of type `column`, nullopt for NULL) holds `expected`.
bool SameValue(const SqlValue& expected, SqlType column, const std::optional<std::string>& actual);

// A row as MySQL returned it: column name -> text (nullopt for NULL), in table order.
using StoredRow = std::vector<std::pair<std::string, std::optional<std::string>>>;

// The rows of one document key, per table (by table name), per row key (RowKey).
template <typename RowT>
using KeyRows = std::map<std::string, std::map<std::string, RowT>>;

// Identifies a row within its table: the texts of `table`'s primary key columns, each as
// "column=text", joined by spaces. `text_of(column)` gives the stored text of a column (nullopt when
// absent). The first `skip` key columns (a child row's copy of the root key) are left out, so a
// child row reads "_idx1=2" in messages.
std::string RowKey(const TableSchema& table,
                   const std::function<std::optional<std::string>(const std::string&)>& text_of,
                   size_t skip);

// The differences between the expected rows of one document and the stored rows of its key, one
// message per differing column or child row: "total: MongoDB 12.5, MySQL 13" for the root table,
// "orders_items (_idx1=2): missing" or "orders_items (_idx1=0) sku: MongoDB \"a\", MySQL \"b\"" for
// child tables. `schema` gives each expected column's type (the catalog the rows were mapped with);
// `root` is the root table's name. Empty when the rows match.
std::vector<std::string> CompareRows(const KeyRows<Row>& expected, const KeyRows<StoredRow>& stored,
                                     const Catalog& schema, const std::string& root);

}  // namespace m2m::verify
