// MySQL column types for mapped BSON values, the widening ladder, and SQL literals.
//
// Every BSON value becomes an SqlValue: its natural column type (the narrowest type in the ladder
// that holds it exactly, so out-of-range values already name a text type) plus its text form.
// Widen() is the one rule deciding what a column becomes when a value does not fit its current
// type; it only ever moves up the ladder in docs/mapping.md ("Types" and "Widening"), so existing
// rows are never truncated. The same rules are implemented by the Spark job.
//
// Thread safety: pure functions and value types.
#pragma once

#include <bson/bson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "m2m/status.h"

namespace m2m {

enum class SqlType {
  kNull,        // no type yet (a column is never created for a null value)
  kBool,        // TINYINT(1)
  kInt,         // INT
  kBigInt,      // BIGINT
  kDecimal,     // DECIMAL(65,30)
  kDouble,      // DOUBLE
  kDateTime,    // DATETIME(3), UTC
  kObjectId,    // CHAR(24), lowercase hex
  kUuid,        // CHAR(36), 8-4-4-4-12 lowercase hex
  kKeyText,     // VARBINARY(1024): key columns that are not BIGINT or CHAR(24); compares bytewise
  kVarchar,     // VARCHAR(255)
  kText,        // TEXT
  kMediumText,  // MEDIUMTEXT
  kLongText,    // LONGTEXT
  kBlob,        // BLOB
  kMediumBlob,  // MEDIUMBLOB
  kLongBlob,    // LONGBLOB
  kJson,        // JSON (LONGTEXT with a json_valid check on MariaDB)
  kOther,       // a type this program did not create (see ColumnSchema::raw_type); never widened
};

// DDL spelling: "BIGINT", "VARCHAR(255)", ...
std::string_view SqlTypeName(SqlType type);
// From information_schema.COLUMNS.COLUMN_TYPE ("bigint(20)", "varchar(255)", "json", ...).
// `json_comment` is true when the column comment marks a JSON column (MariaDB reports JSON as
// longtext). Unknown spellings give kOther.
SqlType ParseColumnType(std::string_view column_type, bool json_comment);

bool IsTextType(SqlType t);  // VARCHAR .. LONGTEXT
bool IsBlobType(SqlType t);  // BLOB .. LONGBLOB

// A mapped value: what to store and which type it needs.
struct SqlValue {
  SqlType type = SqlType::kNull;  // natural type (see header comment)
  // Text form (docs/mapping.md, "Text forms"): what a text column stores for this value.
  std::string text;
  // Raw bytes of a generic binary value (type is a blob type); empty otherwise.
  std::string bytes;
  // Fixed-point form when the value is a number that fits DECIMAL(65,30); nullopt otherwise.
  std::optional<std::string> decimal;
  // For integers: whether a DOUBLE holds the value exactly (|v| <= 2^53).
  bool exact_in_double = true;

  bool is_null() const { return type == SqlType::kNull; }
  friend bool operator==(const SqlValue&, const SqlValue&) = default;
};

// Maps one BSON value. Documents and arrays become kJson (relaxed Extended JSON, compact).
SqlValue ValueFromBson(const bson_iter_t* iter);
// The value of a key column (docs/mapping.md, "Key columns"): BIGINT for integers (int32, int64, and
// doubles and decimals with an integral value, which MongoDB holds equal to them), CHAR(24) for
// ObjectIds, else VARBINARY(1024) holding KeyTextOf. A key text over 1024 bytes is cut and hashed:
// its first whole characters up to 959 bytes, kHashedKeyMark and 64 hex digits of its SHA-256.
// Distinct _ids always get distinct values, whatever mix of types a key column holds.
Result<SqlValue> KeyValueFromBson(const bson_iter_t* iter);
// The key text of a value: integers in decimal, ObjectIds in hex (what BIGINT and CHAR(24) columns
// turn into when they widen to VARBINARY), a string as itself unless it reads like one of the other
// forms (then as a JSON string literal, "\"1\""), anything else as compact canonical Extended JSON
// ({"$numberDouble":"1.5"}, null, true).
std::string KeyTextOf(const bson_iter_t* iter);
// Marks a cut and hashed key text: a byte that no UTF-8 text contains.
inline constexpr char kHashedKeyMark = '\xFF';

// Text as a value of its own: the text type its length needs (VARCHAR(255) .. LONGTEXT).
SqlValue TextValue(std::string text);

// Compact relaxed Extended JSON of one value (documents, arrays, or any scalar).
std::string RelaxedJson(const bson_iter_t* iter);

// The type a column of type `current` must have to hold `value` (current itself when it fits).
// `varchar_allowed` false makes text start at TEXT (the table has reached its VARCHAR budget).
SqlType Widen(SqlType current, const SqlValue& value, bool varchar_allowed);
// The same for key columns: BIGINT and CHAR(24) widen to VARBINARY(1024).
SqlType WidenKey(SqlType current, const SqlValue& value);

// The text MySQL returns for `value` stored in a column of type `column` (and keeps when an ALTER
// turns that column into text): DECIMAL pads to 30 fraction digits, blobs return the raw bytes.
std::string StoredText(const SqlValue& value, SqlType column);
// `value` as it is after MySQL converted its column from `from` to the text type `to` by ALTER.
SqlValue ConvertedToText(const SqlValue& value, SqlType from);

// The literal that stores `value` in a column of type `column`.
std::string SqlLiteral(const SqlValue& value, SqlType column);

// "1.5E+3" or "1e-07" in fixed notation when it fits DECIMAL(65,30) (35 integer, 30 fraction digits).
std::optional<std::string> FixedDecimal(std::string_view scientific);

}  // namespace m2m
