#include "m2m/table_schema.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "m2m/identifiers.h"

namespace m2m {
namespace {
constexpr std::string_view kJsonPrefix = "json ";
}  // namespace

std::string ColumnSchema::TypeDdl() const {
  return type == SqlType::kOther ? raw_type : std::string(SqlTypeName(type));
}

std::string ColumnSchema::Comment() const {
  return type == SqlType::kJson ? std::string(kJsonPrefix) + source : source;
}

const ColumnSchema* TableSchema::FindColumn(std::string_view n) const {
  std::string lower = AsciiLower(n);
  for (const ColumnSchema& c : columns) {
    if (AsciiLower(c.name) == lower) return &c;
  }
  return nullptr;
}

ColumnSchema* TableSchema::FindColumn(std::string_view n) {
  return const_cast<ColumnSchema*>(std::as_const(*this).FindColumn(n));
}

const ColumnSchema* TableSchema::FindSource(std::string_view s) const {
  for (const ColumnSchema& c : columns) {
    if (c.source == s) return &c;
  }
  return nullptr;
}

TableSchema* Catalog::Find(std::string_view name) {
  auto it = tables_.find(AsciiLower(name));
  return it == tables_.end() ? nullptr : &it->second;
}

const TableSchema* Catalog::Find(std::string_view name) const {
  return const_cast<Catalog*>(this)->Find(name);
}

const TableSchema* Catalog::FindSource(std::string_view source) const {
  for (const auto& [key, t] : tables_) {
    if (t.source == source) return &t;
  }
  return nullptr;
}

TableSchema& Catalog::Add(TableSchema table) {
  std::string key = AsciiLower(table.name);
  return tables_[key] = std::move(table);
}

void Catalog::Remove(std::string_view name) { tables_.erase(AsciiLower(name)); }

std::vector<const TableSchema*> Catalog::CollectionTables(std::string_view collection) const {
  std::vector<const TableSchema*> out;
  for (const auto& [key, t] : tables_) {
    auto known = source_collections_.find(t.source);
    if (known == source_collections_.end()) known = source_collections_.emplace(t.source, SourceCollection(t.source)).first;
    if (known->second == collection) out.push_back(&t);
  }
  // The root's source is the shortest; children follow by source so the order is deterministic.
  std::sort(out.begin(), out.end(), [](const TableSchema* a, const TableSchema* b) {
    return std::pair(a->source.size(), a->source) < std::pair(b->source.size(), b->source);
  });
  return out;
}

std::string InformationSchemaQuery(std::string_view database) {
  // Not a JOIN of COLUMNS and TABLES: MariaDB then reads TABLES of every database, and waits for any
  // metadata lock held in one of them (a DROP DATABASE behind an open transaction elsewhere blocks
  // apply's start). A subquery with constant schema reads only this database.
  std::string db = QuoteString(database);
  return "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.COLUMN_KEY, c.COLUMN_COMMENT, "
         "(SELECT t.TABLE_COMMENT FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = " + db +
         " AND t.TABLE_NAME = c.TABLE_NAME) FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = " + db +
         " ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";
}

Result<Catalog> CatalogFromInformationSchema(
    const std::vector<std::vector<std::optional<std::string>>>& rows) {
  Catalog catalog;
  for (const auto& row : rows) {
    if (row.size() < 6 || !row[0] || !row[1] || !row[2]) {
      return Status::Invalid("information_schema row: expected the 6 columns of InformationSchemaQuery");
    }
    TableSchema* table = catalog.Find(*row[0]);
    if (table == nullptr) {
      TableSchema t;
      t.name = *row[0];
      t.source = row[5].value_or("");
      t.created = true;
      table = &catalog.Add(std::move(t));
    }
    ColumnSchema c;
    c.name = *row[1];
    std::string comment = row[4].value_or("");
    bool json = comment.starts_with(kJsonPrefix);
    c.source = json ? comment.substr(kJsonPrefix.size()) : comment;
    c.type = ParseColumnType(*row[2], json);
    if (c.type == SqlType::kOther) c.raw_type = *row[2];
    // Columns created by someone else keep their type: the mapping never alters them.
    c.fixed_type = c.type == SqlType::kOther || c.source.empty();
    if (row[3].value_or("") == "PRI") table->primary_key.push_back(c.name);
    table->columns.push_back(std::move(c));
  }
  return catalog;
}

namespace {

// Compact JSON text of `j` for a COMMENT. MariaDB keeps comments in 3-byte UTF-8 and turns every
// character beyond the Basic Multilingual Plane into '?', so those are written as \u escapes
// (surrogate pairs): the comment then reads back as the same source and the same field keeps its
// column after a restart.
std::string CommentJson(const nlohmann::json& j) {
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0xF0 || i + 3 >= text.size()) {
      out += text[i];
      continue;
    }
    uint32_t cp = ((c & 0x07u) << 18) | ((static_cast<unsigned char>(text[i + 1]) & 0x3Fu) << 12) |
                  ((static_cast<unsigned char>(text[i + 2]) & 0x3Fu) << 6) |
                  (static_cast<unsigned char>(text[i + 3]) & 0x3Fu);
    cp -= 0x10000;
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    out += buf;
    i += 3;
  }
  return out;
}

}  // namespace

namespace {

// Mapping asks for sources for every field of every event: names of plain printable ASCII (nearly
// all) are written directly, in the bytes CommentJson's dump would give them.
bool IsPlainName(std::string_view name) {
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; });
}

bool IsPlainPath(const std::vector<std::string>& path) {
  return std::all_of(path.begin(), path.end(), [](const std::string& name) { return IsPlainName(name); });
}

}  // namespace

std::string PathSource(const std::vector<std::string>& path) {
  if (!IsPlainPath(path)) return CommentJson(nlohmann::json(path));
  std::string out = "[";
  for (const std::string& name : path) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += name;
    out += '"';
  }
  return out + "]";
}

std::string TableSource(std::string_view collection, const std::vector<std::vector<std::string>>& levels) {
  if (IsPlainName(collection) && std::all_of(levels.begin(), levels.end(), IsPlainPath)) {
    std::string out = "[\"";
    out += collection;
    out += '"';
    for (const auto& level : levels) {
      out += ',';
      out += PathSource(level);
    }
    return out + "]";
  }
  nlohmann::json j = nlohmann::json::array({std::string(collection)});
  for (const auto& level : levels) j.push_back(level);
  return CommentJson(j);
}

std::optional<std::string> SourceCollection(std::string_view source) {
  nlohmann::json j = nlohmann::json::parse(source, nullptr, false);
  if (!j.is_array() || j.empty() || !j[0].is_string()) return std::nullopt;
  return j[0].get<std::string>();
}

}  // namespace m2m
