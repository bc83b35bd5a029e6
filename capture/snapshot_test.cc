#include "snapshot.h"

#include <gtest/gtest.h>

namespace m2m::capture {
namespace {

// Adds {_id: <value>} for each Extended JSON value, in the given order.
Status AddIds(ChunkPlanner& planner, const std::vector<std::string>& values) {
  for (const auto& value : values) {
    auto doc = BsonDocument::FromJson("{\"_id\": " + value + "}");
    if (!doc.ok()) return doc.status();
    bson_iter_t it;
    bson_iter_init_find(&it, doc->get(), "_id");
    M2M_RETURN_NOT_OK(planner.Add(it));
  }
  return Status::OK();
}

std::string Bound(const std::optional<BsonDocument>& b) { return b ? b->ToRelaxedJson() : "open"; }

std::vector<std::string> Describe(const std::vector<SnapshotChunk>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.push_back(c.type_class + " " + Bound(c.lo) + " " + Bound(c.hi));
  return out;
}

TEST(ChunkPlannerTest, CutsEachClassIntoChunksOfAtMostChunkSize) {
  ChunkPlanner planner(2);
  ASSERT_TRUE(AddIds(planner, {"1", "2.5", "{\"$numberLong\": \"3\"}", "4", "5"}).ok());
  EXPECT_EQ(planner.documents(), 5);
  EXPECT_EQ(Describe(planner.Finish()),
            (std::vector<std::string>{"number open { \"v\" : 3 }", "number { \"v\" : 3 } { \"v\" : 5 }",
                                      "number { \"v\" : 5 } open"}));
}

TEST(ChunkPlannerTest, ExactMultipleOfChunkSizeLeavesNoEmptyChunk) {
  ChunkPlanner planner(2);
  ASSERT_TRUE(AddIds(planner, {"1", "2", "3", "4"}).ok());
  EXPECT_EQ(Describe(planner.Finish()),
            (std::vector<std::string>{"number open { \"v\" : 3 }", "number { \"v\" : 3 } open"}));
}

TEST(ChunkPlannerTest, MixedTypesGetAChunkPerClassInSortOrderWhateverTheInputOrder) {
  ChunkPlanner planner(10);
  // Interleaved classes (not what MongoDB's sort gives, but the plan must not depend on it).
  ASSERT_TRUE(AddIds(planner, {"{\"$oid\": \"5f0000000000000000000001\"}", "\"a\"", "7", "\"b\"", "null",
                               "{\"x\": 1}", "true", "{\"$date\": \"2024-01-01T00:00:00Z\"}"})
                  .ok());
  auto chunks = planner.Finish();
  std::vector<std::string> classes;
  for (const auto& c : chunks) {
    classes.push_back(c.type_class);
    EXPECT_FALSE(c.lo || c.hi) << c.type_class;  // one chunk per class: open on both sides
  }
  EXPECT_EQ(classes, (std::vector<std::string>{"null", "number", "string", "object", "objectId", "bool", "date"}));
  EXPECT_EQ(planner.documents(), 8);
}

TEST(ChunkPlannerTest, AnIdNoRangeCanCoverIsAnErrorShowingIt) {
  ChunkPlanner planner(10);
  Status st = AddIds(planner, {"1", "{\"$regularExpression\": {\"pattern\": \"^a\", \"options\": \"\"}}"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot range-scan"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("^a"), std::string::npos) << st.message();
}

TEST(ChunkPlannerTest, NothingAddedPlansNothing) {
  ChunkPlanner planner(10);
  EXPECT_TRUE(planner.Finish().empty());
  EXPECT_EQ(planner.documents(), 0);
}

}  // namespace
}  // namespace m2m::capture
