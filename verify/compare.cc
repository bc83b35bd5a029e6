#include "compare.h"

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "m2m/identifiers.h"

namespace m2m::verify {
namespace {

std::optional<double> ParseDouble(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return d;
}

constexpr size_t kShownChars = 80;

std::string Shown(const std::optional<std::string>& text) {
  if (!text) return "NULL";
  if (text->size() <= kShownChars) return *text;
  return text->substr(0, kShownChars) + "...";
}

const SqlValue* FindValue(const Row& row, const std::string& column) {
  const std::string lower = AsciiLower(column);
  for (const ColumnValue& cv : row) {
    if (AsciiLower(cv.column) == lower) return &cv.value;
  }
  return nullptr;
}

SqlType ColumnType(const Catalog& schema, const std::string& table, const std::string& column) {
  const TableSchema* t = schema.Find(table);
  const ColumnSchema* c = t ? t->FindColumn(column) : nullptr;
  return c ? c->type : SqlType::kNull;
}

// The differing columns of one row pair.
void CompareRow(const Row& expected, const StoredRow& stored, const Catalog& schema, const std::string& table,
                const std::string& where, std::vector<std::string>* out) {
  static const SqlValue kNull;
  std::set<std::string> seen;
  for (const auto& [column, text] : stored) {
    seen.insert(AsciiLower(column));
    const SqlValue* v = FindValue(expected, column);
    const SqlType type = ColumnType(schema, table, column);
    if (SameValue(v ? *v : kNull, type, text)) continue;
    std::optional<std::string> want;
    if (v && !v->is_null()) want = StoredText(*v, type);
    out->push_back(where + column + ": MongoDB " + Shown(want) + ", MySQL " + Shown(text));
  }
  for (const ColumnValue& cv : expected) {
    if (cv.value.is_null() || seen.count(AsciiLower(cv.column))) continue;
    out->push_back(where + cv.column + ": MongoDB " +
                   Shown(StoredText(cv.value, ColumnType(schema, table, cv.column))) +
                   ", MySQL has no such column");
  }
}

}  // namespace

bool SameValue(const SqlValue& expected, SqlType column, const std::optional<std::string>& actual) {
  if (expected.is_null() || !actual) return expected.is_null() && !actual;
  if (StoredText(expected, column) == *actual) return true;
  if (column == SqlType::kJson) {
    auto a = nlohmann::json::parse(expected.text, nullptr, false);
    auto b = nlohmann::json::parse(*actual, nullptr, false);
    return !a.is_discarded() && !b.is_discarded() && a == b;
  }
  if (column == SqlType::kDouble) {
    auto a = ParseDouble(expected.text);
    auto b = ParseDouble(*actual);
    return a && b && *a == *b;
  }
  if (IsTextType(column) && expected.decimal) return StoredText(expected, SqlType::kDecimal) == *actual;
  return false;
}

std::string RowKey(const TableSchema& table,
                   const std::function<std::optional<std::string>(const std::string&)>& text_of, size_t skip) {
  std::string out;
  for (size_t i = skip; i < table.primary_key.size(); ++i) {
    if (!out.empty()) out += ' ';
    out += table.primary_key[i] + "=" + text_of(table.primary_key[i]).value_or("NULL");
  }
  return out;
}

std::vector<std::string> CompareRows(const KeyRows<Row>& expected, const KeyRows<StoredRow>& stored,
                                     const Catalog& schema, const std::string& root) {
  static const std::map<std::string, Row> kNoExpected;
  static const std::map<std::string, StoredRow> kNoStored;
  std::set<std::string> tables;
  for (const auto& [t, rows] : expected) tables.insert(t);
  for (const auto& [t, rows] : stored) tables.insert(t);
  std::vector<std::string> out;
  for (const std::string& table : tables) {
    auto e = expected.find(table);
    auto s = stored.find(table);
    const auto& want = e == expected.end() ? kNoExpected : e->second;
    const auto& have = s == stored.end() ? kNoStored : s->second;
    std::set<std::string> keys;
    for (const auto& [k, r] : want) keys.insert(k);
    for (const auto& [k, r] : have) keys.insert(k);
    for (const std::string& key : keys) {
      const std::string where = table == root ? "" : table + " (" + key + ")";
      auto w = want.find(key);
      auto h = have.find(key);
      if (h == have.end()) {
        out.push_back((where.empty() ? table : where) + ": missing");
      } else if (w == want.end()) {
        out.push_back((where.empty() ? table : where) + ": extra row");
      } else {
        CompareRow(w->second, h->second, schema, table, where.empty() ? "" : where + " ", &out);
      }
    }
  }
  return out;
}

}  // namespace m2m::verify
