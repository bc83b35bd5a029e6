// Shared by the mapping tests: events from Extended JSON and a fixture that maps them into a catalog
// and renders the batch's SQL.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "m2m/mapping.h"
#include "m2m/identifiers.h"
#include "m2m/sql_writer.h"

namespace m2m {

inline ChangeEvent Insert(const std::string& json, const std::string& coll = "orders") {
  ChangeEvent ev;
  ev.kind = EventKind::kInsert;
  ev.collection = coll;
  auto doc = BsonDocument::FromJson(json);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  ev.after = *doc;
  bson_iter_t it;
  if (bson_iter_init_find(&it, doc->get(), "_id")) {
    bson_append_iter(ev.document_key.mutable_get(), "_id", 3, &it);
  }
  return ev;
}

inline ChangeEvent Keyed(EventKind kind, const std::string& key_json, const std::string& coll = "orders") {
  ChangeEvent ev;
  ev.kind = kind;
  ev.collection = coll;
  ev.document_key = *BsonDocument::FromJson(key_json);
  return ev;
}

class MappingTest : public ::testing::Test {
 protected:
  void Use(const std::string& yaml) {
    auto config = ParseMappingYaml(yaml);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    mapper_ = std::make_unique<Mapper>(*Mapper::Make(*config));
  }
  // Maps the events and returns all statements of one batch.
  std::vector<std::string> Sql(const std::vector<ChangeEvent>& events) {
    Batch batch;
    for (const ChangeEvent& ev : events) {
      auto m = mapper_->Map(ev, catalog_);
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      if (m.ok()) batch.Add(std::move(*m), catalog_);
    }
    auto sql = RenderBatch(batch, options_);
    EXPECT_TRUE(sql.ok()) << sql.status().ToString();
    return sql.ok() ? *sql : std::vector<std::string>{};
  }
  const ColumnSchema* Column(const std::string& table, const std::string& column) {
    const TableSchema* t = catalog_.Find(table);
    return t ? t->FindColumn(column) : nullptr;
  }
  SqlType TypeOf(const std::string& table, const std::string& column) {
    const ColumnSchema* c = Column(table, column);
    return c ? c->type : SqlType::kNull;
  }

  // The catalog as apply reads it back after a restart: from what information_schema returns for
  // the tables, comments in MariaDB's 3-byte UTF-8 (a 4-byte character reads back as '?').
  void Restart() {
    std::vector<std::vector<std::optional<std::string>>> rows;
    auto as_stored = [](std::string s) {
      std::string out;
      for (size_t i = 0; i < s.size(); ++i) {
        if (static_cast<unsigned char>(s[i]) >= 0xF0) {
          out += '?';
          i += 3;
        } else {
          out += s[i];
        }
      }
      return out;
    };
    for (const auto& [k, t] : catalog_.tables()) {
      for (const ColumnSchema& c : t.columns) {
        bool pk = std::find(t.primary_key.begin(), t.primary_key.end(), c.name) != t.primary_key.end();
        std::string type = c.type == SqlType::kJson ? "longtext" : AsciiLower(c.TypeDdl());
        rows.push_back({t.name, c.name, type, pk ? "PRI" : "", as_stored(c.Comment()), as_stored(t.source)});
      }
    }
    auto restored = CatalogFromInformationSchema(rows);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    catalog_ = std::move(*restored);
  }

  std::unique_ptr<Mapper> mapper_ = std::make_unique<Mapper>(*Mapper::Make({}));
  Catalog catalog_;
  SqlOptions options_;
};

}  // namespace m2m
