// Needs the local stack (make up): runs every scenario's generated SQL on the real server, one batch
// and one event per batch, and compares the tables with the scenario's expectations.
#include <gtest/gtest.h>

#include "m2m/identifiers.h"
#include "m2m/mysql_client.h"
#include "scenario_util.h"
#include "test_env.h"

namespace m2m {
namespace {

class ScenarioSqlTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioSqlTest, ServerEndsWithTheExpectedRows) {
  auto s = testing::LoadScenario(GetParam());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto conn = MysqlConnection::Connect(testing::StackMysqlOptions());
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  for (size_t batch_size : {size_t{0}, size_t{1}}) {
    SCOPED_TRACE(s->name + (batch_size ? " (one event per batch)" : " (one batch)"));
    const std::string db = testing::UniqueName("h1_scenario");
    ASSERT_TRUE((*conn)->Execute("CREATE DATABASE `" + db + "`; USE `" + db + "`").ok());
    ASSERT_TRUE((*conn)->Execute("SET NAMES utf8mb4").ok());
    Catalog catalog;
    auto batches = testing::MapScenario(*s, catalog, batch_size);
    ASSERT_TRUE(batches.ok()) << batches.status().ToString();
    for (const Batch& b : *batches) {
      auto sql = RenderBatch(b, SqlOptions{});
      ASSERT_TRUE(sql.ok()) << sql.status().ToString();
      for (const std::string& stmt : *sql) {
        Status st = (*conn)->Execute(stmt);
        ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << stmt;
      }
    }
    // The schema read back must map the same fields to the same columns.
    auto info = (*conn)->Query(InformationSchemaQuery(db));
    ASSERT_TRUE(info.ok());
    auto restored = CatalogFromInformationSchema(*info);
    ASSERT_TRUE(restored.ok());
    for (const auto& [key, t] : catalog.tables()) {
      const TableSchema* r = restored->Find(t.name);
      ASSERT_NE(r, nullptr) << t.name;
      EXPECT_EQ(r->source, t.source);
      EXPECT_EQ(r->primary_key, t.primary_key);
      for (const ColumnSchema& c : t.columns) {
        ASSERT_NE(r->FindColumn(c.name), nullptr) << c.name;
        EXPECT_EQ(r->FindColumn(c.name)->type, c.type) << t.name << "." << c.name;
        EXPECT_EQ(r->FindColumn(c.name)->source, c.source);
      }
    }
    for (const auto& [table, want] : s->expect) {
      std::string cols;
      for (const std::string& c : want.columns) cols += (cols.empty() ? "" : ",") + QuoteIdentifier(c);
      auto rows = (*conn)->Query("SELECT " + cols + " FROM " + QuoteIdentifier(table));
      ASSERT_TRUE(rows.ok()) << rows.status().ToString();
      auto names = (*conn)->Query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='" + db +
                                  "' AND TABLE_NAME=" + QuoteString(table) + " ORDER BY ORDINAL_POSITION");
      ASSERT_TRUE(names.ok());
      std::vector<std::string> columns;
      for (const auto& n : *names) columns.push_back(*n[0]);
      EXPECT_EQ(testing::Compare(table, want, columns, *rows), "");
    }
    ASSERT_TRUE((*conn)->Execute("DROP DATABASE `" + db + "`").ok());
  }
}

INSTANTIATE_TEST_SUITE_P(Scenarios, ScenarioSqlTest, ::testing::ValuesIn(testing::ScenarioFiles()),
                         testing::ScenarioTestName);

}  // namespace
}  // namespace m2m
