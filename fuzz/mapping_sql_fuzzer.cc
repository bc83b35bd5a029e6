// Fuzzes the mapping and the SQL generator: Extended JSON documents -> ChangeEvents -> Mapper::Map
// (one Catalog for the whole input) -> Batch -> RenderBatch.
//
// Input, one item per line:
//   option lines first (any of): "scalar_arrays=table", "flatten_depth=<0-9>", "map_threshold=<0-99>"
//   {...}             an Extended JSON document, inserted into collection "fuzz" (_id: the line number
//                     when it has none)
//   update {...}      an update of the last inserted document: the updatedFields, no post-image
//   delete            a delete of the last inserted document
// Checks, beyond "no crash, no sanitizer report": a failed Map is kMapping and leaves the catalog as
// it was (mapping.h); a batch without kNeedsFullDocument renders; in every statement each identifier is
// backtick-quoted and a valid generated name ([A-Za-z0-9_], 1-64 characters), every literal is closed,
// and everything else is a keyword, a type, a number or punctuation the writer emits -- so no field name
// or value can reach SQL text unquoted.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "m2m/identifiers.h"
#include "m2m/mapping.h"
#include "m2m/sql_writer.h"

namespace {

using m2m::fuzz::Fail;

std::string DumpCatalog(const m2m::Catalog& catalog) {
  std::string out;
  for (const auto& [key, t] : catalog.tables()) {
    out += key + "|" + t.name + "|" + t.source + "|" + (t.created ? "created" : "new") + "|pk:";
    for (const std::string& k : t.primary_key) out += k + ",";
    out += "\n";
    for (const m2m::ColumnSchema& c : t.columns) {
      out += "  " + c.name + " " + c.TypeDdl() + " " + c.source + (c.fixed_type ? " fixed" : "") + "\n";
    }
  }
  return out;
}

bool IsKeywordOrType(std::string word) {
  static const std::set<std::string> kWords = {
      // statements (sql_writer.cc)
      "ADD", "ALGORITHM", "ALTER", "AND", "CHARSET", "COLLATE", "COLUMN", "COMMENT", "CREATE", "DEFAULT",
      "DELETE", "DROP", "DUPLICATE", "ENGINE", "EXISTS", "FROM", "IF", "IN", "INSERT", "INSTANT", "INTO",
      "KEY", "MODIFY", "NOT", "NULL", "ON", "PRIMARY", "RENAME", "SET", "TABLE", "TO", "UPDATE", "VALUES",
      "WHERE", "INNODB", "UTF8MB4", "UTF8MB4_BIN",
      // X'<hex>' literals
      "X",
      // column types (sql_types.cc)
      "TINYINT", "INT", "BIGINT", "DECIMAL", "DOUBLE", "DATETIME", "CHAR", "VARBINARY", "VARCHAR", "TEXT",
      "MEDIUMTEXT", "LONGTEXT", "BLOB", "MEDIUMBLOB", "LONGBLOB", "JSON"};
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return kWords.count(word) > 0;
}

void CheckStatement(const std::string& sql) {
  auto fail = [&](const std::string& why) { Fail("SQL statement", why + "\n" + sql); };
  size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    if (c == '`') {
      std::string name;
      for (++i;; ++i) {
        if (i >= sql.size()) fail("unterminated identifier");
        if (sql[i] == '`') {
          if (i + 1 < sql.size() && sql[i + 1] == '`') {
            name += '`';
            ++i;
            continue;
          }
          break;
        }
        name += sql[i];
      }
      ++i;
      if (name.empty() || name.size() > m2m::kMaxIdentifierLength) fail("identifier length: `" + name + "`");
      for (char n : name) {
        if (!std::isalnum(static_cast<unsigned char>(n)) && n != '_') fail("identifier not sanitized: `" + name + "`");
      }
    } else if (c == '\'') {
      for (++i;; ++i) {
        if (i >= sql.size()) fail("unterminated string literal");
        if (sql[i] == '\\') {
          ++i;
          continue;
        }
        if (sql[i] == '\'') {
          if (i + 1 < sql.size() && sql[i + 1] == '\'') {
            ++i;
            continue;
          }
          break;
        }
      }
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = i;
      while (i < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) ++i;
      std::string word = sql.substr(start, i - start);
      if (!IsKeywordOrType(word)) fail("bare word \"" + word + "\" outside quotes");
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      while (i < sql.size() && (std::isdigit(static_cast<unsigned char>(sql[i])) || sql[i] == '.')) ++i;
      if (i < sql.size() && (sql[i] == 'e' || sql[i] == 'E')) {
        ++i;
        if (i < sql.size() && (sql[i] == '+' || sql[i] == '-')) ++i;
        while (i < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i]))) ++i;
      }
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      fail("comment outside quotes");
    } else if (std::string_view(" \n(),=-.").find(c) != std::string_view::npos) {
      ++i;
    } else {
      fail(std::string("character '") + c + "' outside quotes");
    }
  }
}

m2m::BsonDocument KeyOf(const m2m::BsonDocument& doc) {
  m2m::BsonDocument key;
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc.get(), "_id")) bson_append_iter(key.mutable_get(), "_id", 3, &it);
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  m2m::MappingConfig config;
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= input.size();) {
    size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    lines.push_back(input.substr(pos, end - pos));
    pos = end + 1;
  }
  size_t first = 0;
  for (; first < lines.size(); ++first) {
    std::string_view l = lines[first];
    if (l == "scalar_arrays=table") {
      config.options.scalar_arrays = m2m::ScalarArrayMode::kTable;
    } else if (l.size() == 15 && l.substr(0, 14) == "flatten_depth=" && std::isdigit(static_cast<unsigned char>(l[14]))) {
      config.options.flatten_depth = l[14] - '0';
    } else if (l.size() >= 15 && l.size() <= 16 && l.substr(0, 14) == "map_threshold=") {
      config.options.map_threshold = std::atoi(std::string(l.substr(14)).c_str());
    } else {
      break;
    }
  }
  auto mapper = m2m::Mapper::Make(config);
  if (!mapper.ok()) return 0;

  m2m::Catalog catalog;
  m2m::Batch batch;
  std::optional<m2m::BsonDocument> last_key;
  for (size_t n = first; n < lines.size(); ++n) {
    std::string_view line = lines[n];
    if (line.empty()) continue;
    m2m::ChangeEvent event;
    event.db = "fuzzdb";
    event.collection = "fuzz";
    if (line == "delete") {
      if (!last_key) continue;
      event.kind = m2m::EventKind::kDelete;
      event.document_key = *last_key;
    } else if (line.substr(0, 7) == "update ") {
      auto fields = m2m::BsonDocument::FromJson(line.substr(7));
      if (!last_key || !fields.ok()) continue;
      event.kind = m2m::EventKind::kUpdate;
      event.document_key = *last_key;
      event.update = m2m::UpdateDescription{std::move(*fields), {}, {}, {}};
    } else {
      auto doc = m2m::BsonDocument::FromJson(line);
      if (!doc.ok()) continue;
      if (!bson_has_field(doc->get(), "_id")) BSON_APPEND_INT32(doc->mutable_get(), "_id", static_cast<int32_t>(n));
      event.kind = m2m::EventKind::kInsert;
      event.document_key = KeyOf(*doc);
      event.after = std::move(*doc);
      last_key = event.document_key;
    }
    std::string before = DumpCatalog(catalog);
    auto mapped = mapper->Map(event, catalog);
    if (!mapped.ok()) {
      if (mapped.status().code() != m2m::StatusCode::kMapping) Fail("Map", "error is not kMapping: " + mapped.status().ToString());
      std::string after = DumpCatalog(catalog);
      if (after != before) Fail("Map", "failed Map changed the catalog: " + mapped.status().ToString() + "\n" + before + "---\n" + after);
      continue;
    }
    batch.Add(std::move(*mapped), catalog);
  }
  if (!batch.NeedsFullDocument().empty()) return 0;
  auto statements = m2m::RenderBatch(batch, m2m::SqlOptions{});
  if (!statements.ok()) Fail("RenderBatch", statements.status().ToString());
  for (const std::string& sql : *statements) CheckStatement(sql);
  return 0;
}
