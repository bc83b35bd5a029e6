// Identifiers and literals for generated SQL: the only way a MongoDB field name or value reaches SQL text.
//
// Every identifier is quoted with backticks and every value is an escaped literal, so no field name
// and no value can change the meaning of a statement. Names are derived from MongoDB paths by a
// deterministic algorithm (docs/mapping.md, "Identifiers") that the Spark job reproduces exactly:
//   1. each path component keeps [A-Za-z0-9_]; every other Unicode code point becomes '_';
//   2. components are joined with the separator and appended to the prefix (a parent table name);
//   3. a name that step 1 changed, that is longer than 64 characters, or that is already taken
//      (case-insensitively, as MySQL compares column names) by another source becomes
//      <first 55 characters>_<8 hex digits of FNV-1a-32 of the source string>, and if even that is
//      taken, gets "_2", "_3", ... before the hash.
//
// The literals assume the session uses utf8mb4 and sql_mode does not contain NO_BACKSLASH_ESCAPES
// (both MariaDB's and MySQL's default).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace m2m {

// MySQL's limit for table and column names, in characters.
inline constexpr size_t kMaxIdentifierLength = 64;

// `name` with backticks doubled: `a``b`.
std::string QuoteIdentifier(std::string_view name);

// A single-quoted string literal; escapes backslash, both quotes, NUL, \n, \r and \x1a (Ctrl-Z).
// `text` must be UTF-8; multi-byte sequences never contain those ASCII bytes, so they pass through.
std::string QuoteString(std::string_view text);

// X'<hex>': any bytes, no escaping needed.
std::string HexLiteral(std::string_view bytes);

// FNV-1a 32-bit of the bytes, as 8 lowercase hex digits.
std::string Fnv1a32Hex(std::string_view bytes);

// Step 1 above; sets *changed when anything was replaced (or the component is empty).
std::string SanitizeComponent(std::string_view component, bool* changed);

// Steps 1-3 above. `prefix` is already a valid name (or empty for a root table); `hash_source` is
// the identity of what is being named (a column's or table's source string, see table_schema.h);
// `taken(name)` says whether a candidate collides with an existing name owned by another source.
std::string MakeIdentifier(std::string_view prefix, const std::vector<std::string>& path,
                           std::string_view separator, std::string_view hash_source,
                           const std::function<bool(std::string_view)>& taken);

// ASCII lower-casing: MySQL column names are case-insensitive, and sanitized names are ASCII.
std::string AsciiLower(std::string_view s);

}  // namespace m2m
