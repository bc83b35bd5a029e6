// Every scenario in tests/scenarios maps, without a server, to exactly the rows it expects, both as
// one batch (coalesced) and one event per batch.
#include <gtest/gtest.h>

#include "scenario_util.h"

namespace m2m {
namespace {

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, MapsToTheExpectedRows) {
  auto s = testing::LoadScenario(GetParam());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (size_t batch_size : {size_t{0}, size_t{1}}) {
    SCOPED_TRACE(s->name + (batch_size ? " (one event per batch)" : " (one batch)"));
    Catalog catalog;
    auto batches = testing::MapScenario(*s, catalog, batch_size);
    ASSERT_TRUE(batches.ok()) << batches.status().ToString();
    testing::MemoryDatabase db;
    for (const Batch& b : *batches) {
      ASSERT_TRUE(RenderBatch(b, SqlOptions{}).ok());
      db.Apply(b);
    }
    auto dump = db.Dump();
    for (const auto& [table, want] : s->expect) {
      auto it = dump.find(table);
      ASSERT_NE(it, dump.end()) << "missing table " << table;
      EXPECT_EQ(testing::Compare(table, want, it->second.first, it->second.second), "");
    }
    for (const auto& [table, got] : dump) EXPECT_TRUE(s->expect.count(table)) << "unexpected table " << table;
  }
}

INSTANTIATE_TEST_SUITE_P(Scenarios, ScenarioTest, ::testing::ValuesIn(testing::ScenarioFiles()),
                         testing::ScenarioTestName);

}  // namespace
}  // namespace m2m
