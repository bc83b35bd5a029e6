#include <gtest/gtest.h>

#include <map>

#include "event_fixtures.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

using testing::EventFixture;

// Feeds a fixture's raw event, or its fragments through a SplitEventAssembler, to the converter.
Result<ChangeEvent> ConvertFixture(const EventFixture& f) {
  std::optional<Namespace> fallback = f.Fallback();
  const Namespace* fb = fallback ? &*fallback : nullptr;
  std::optional<BsonDocument> fragments = f.Get("fragments");
  if (!fragments) return FromChangeStreamDocument(f.Get("raw")->get(), fb);
  SplitEventAssembler assembler;
  std::optional<BsonDocument> merged;
  bson_iter_t it;
  bson_iter_init(&it, fragments->get());
  while (bson_iter_next(&it)) {
    EXPECT_FALSE(merged.has_value()) << "an event came out before the last fragment";
    M2M_ASSIGN_OR_RETURN(merged, assembler.Add(event_internal::SubDocument(&it).get()));
  }
  EXPECT_FALSE(assembler.pending());
  if (!merged) return Status::Internal("no event after the last fragment");
  EXPECT_TRUE(*merged == *f.Get("raw")) << merged->ToCanonicalJson();
  return FromChangeStreamDocument(merged->get(), fb);
}

TEST(ChangeStreamEventTest, FixturesConvertToTheExpectedEvent) {
  auto fixtures = testing::LoadEventFixtures();
  ASSERT_GE(fixtures.size(), 20u);
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    EXPECT_FALSE(f.GetString("source").empty()) << "every fixture records where its shape comes from";
    Result<ChangeEvent> event = ConvertFixture(f);
    std::string error = f.GetString("expected_error");
    if (!error.empty()) {
      ASSERT_FALSE(event.ok());
      EXPECT_EQ(event.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(event.status().message().find(error), std::string::npos) << event.status().message();
      continue;
    }
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    testing::ExpectSameEvent(*event, testing::ExpectedEvent(f.Get("expected")->get()));
  }
}

TEST(ChangeStreamEventTest, SupportedOperationTypes) {
  for (const char* type : {"insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"}) {
    EXPECT_TRUE(IsSupportedOperationType(type)) << type;
  }
  for (const char* type : {"create", "createIndexes", "dropIndexes", "modify", "shardCollection", "", "Insert"}) {
    EXPECT_FALSE(IsSupportedOperationType(type)) << type;
  }
}

// Capture marks document_gone from this and its own fullDocument mode; the converter cannot know the mode.
TEST(ChangeStreamEventTest, FullDocumentIsNullOnlyForUpdatesWhoseLookupOrImageFoundNothing) {
  std::map<std::string, bool> expected{{"update_lookup_deleted", true}, {"update_images_unavailable", true},
                                       {"update", false}, {"update_pre_post_images", false}, {"insert", false},
                                       {"replace", false}, {"delete_pre_image", false}};
  size_t seen = 0;
  for (const auto& f : testing::LoadEventFixtures()) {
    auto it = expected.find(f.name);
    if (it == expected.end()) continue;
    SCOPED_TRACE(f.name);
    EXPECT_EQ(FullDocumentIsNull(f.Get("raw")->get()), it->second);
    Result<ChangeEvent> event = ConvertFixture(f);
    ASSERT_TRUE(event.ok()) << event.status().ToString();
    EXPECT_FALSE(event->document_gone);
    seen++;
  }
  EXPECT_EQ(seen, expected.size());
  auto insert_with_null = BsonDocument::FromJson(R"({"operationType": "insert", "fullDocument": null})");
  EXPECT_FALSE(FullDocumentIsNull(insert_with_null->get()));
}

TEST(ChangeStreamEventTest, MissingOperationTypeIsNamed) {
  auto doc = BsonDocument::FromJson(R"({"_id": {"_data": "82"}, "ns": {"db": "a", "coll": "b"}})");
  auto event = FromChangeStreamDocument(doc->get());
  ASSERT_FALSE(event.ok());
  EXPECT_EQ(event.status().message(), "change stream event: field \"operationType\" is missing");
}

TEST(ChangeStreamEventTest, NsInTheEventWinsOverTheFallback) {
  auto doc = BsonDocument::FromJson(R"({"_id": {"_data": "82"}, "operationType": "drop",
      "clusterTime": {"$timestamp": {"t": 5, "i": 1}}, "ns": {"db": "a", "coll": "b"}})");
  Namespace fallback{"x", "y"};
  auto event = FromChangeStreamDocument(doc->get(), &fallback);
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(event->db, "a");
  EXPECT_EQ(event->collection, "b");
}

TEST(ChangeStreamEventTest, SnapshotReadKeepsTheDocument) {
  auto doc = BsonDocument::FromJson(R"({"_id": {"$numberLong": "7"}, "x": "y"})");
  auto event = MakeSnapshotRead("db", "coll", doc->get());
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->kind, EventKind::kRead);
  EXPECT_EQ(event->document_key.ToCanonicalJson(), R"({ "_id" : { "$numberLong" : "7" } })");
  EXPECT_TRUE(event->after == *doc);
  EXPECT_TRUE(event->resume_token.empty());

  auto no_id = BsonDocument::FromJson(R"({"x": 1})");
  auto bad = MakeSnapshotRead("db", "coll", no_id->get());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "snapshot document in db.coll: field \"_id\" is missing");
}

}  // namespace
}  // namespace m2m
