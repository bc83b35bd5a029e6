#include "snapshot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace m2m::capture {
namespace {

// Adds {_id: <value>} for each Extended JSON value, in the given order.
Status AddIds(ChunkPlanner& planner, const std::vector<std::string>& values) {
  for (const auto& value : values) {
    auto doc = BsonDocument::FromJson("{\"_id\": " + value + "}");
    if (!doc.ok()) return doc.status();
    bson_iter_t it;
    bson_iter_init_find(&it, doc->get(), "_id");
    planner.Add(it);
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

// A regex _id is a valid document: MongoDB only refuses it as a range bound, so it goes to the
// unranged chunk, read by type, after the ranged classes.
TEST(ChunkPlannerTest, IdsNoRangeCanCoverGoToOneUnrangedChunkAfterTheClasses) {
  ChunkPlanner planner(1);
  ASSERT_TRUE(AddIds(planner, {"1", "{\"$regularExpression\": {\"pattern\": \"^a\", \"options\": \"\"}}",
                               "{\"$code\": \"f()\"}", "2"})
                  .ok());
  planner.AddUnranged(3);
  EXPECT_EQ(planner.documents(), 7);
  EXPECT_EQ(Describe(planner.Finish()), (std::vector<std::string>{"number open { \"v\" : 2 }",
                                                                   "number { \"v\" : 2 } open", "unranged open open"}));
}

TEST(ChunkPlannerTest, NothingAddedPlansNothing) {
  ChunkPlanner planner(10);
  EXPECT_TRUE(planner.Finish().empty());
  EXPECT_EQ(planner.documents(), 0);
}

}  // namespace
}  // namespace m2m::capture

namespace m2m::capture {
namespace {

// A plan of `n` chunks of ObjectId _ids, as a large collection gets.
CollectionSnapshot LargePlan(size_t n) {
  CollectionSnapshot plan;
  plan.ns = {"shop", "orders"};
  std::optional<BsonDocument> lo;
  for (size_t i = 0; i < n; ++i) {
    char oid[25];
    snprintf(oid, sizeof oid, "65%022zx", i + 1);
    std::optional<BsonDocument> hi;
    if (i + 1 < n) hi = BsonDocument::FromJson(std::string("{\"v\": {\"$oid\": \"") + oid + "\"}}").value();
    plan.chunks.push_back({"objectId", lo, hi});
    lo = hi;
  }
  plan.done.assign(n, false);
  plan.documents = static_cast<int64_t>(n) * 5000;
  return plan;
}

std::vector<std::string> Describe(const CollectionSnapshot& plan) {
  std::vector<std::string> out;
  for (const auto& c : plan.chunks) out.push_back(c.type_class + " " + Bound(c.lo) + " " + Bound(c.hi));
  return out;
}

TEST(CollectionSnapshotTest, TheProgressOf100000ChunksStaysSmallAndThePlanComesBackFromItsPages) {
  CollectionSnapshot plan = LargePlan(100000);
  for (size_t i = 0; i < 99000; ++i) plan.done[i] = true;  // a frontier ...
  for (size_t i : {99001, 99003, 99007}) plan.done[i] = true;  // ... and the chunks done beyond it
  plan.copied = 99003 * 5000;

  std::string progress = plan.ProgressJson();
  EXPECT_LT(progress.size(), 512u) << progress;
  std::vector<std::string> pages = plan.PlanPages();
  ASSERT_GT(pages.size(), 1u);
  for (const auto& page : pages) EXPECT_LE(page.size(), CollectionSnapshot::kPlanPageBytes + 1024);

  auto page = [&](size_t p) -> std::optional<std::string> {
    if (p >= pages.size()) return std::nullopt;
    return pages[p];
  };
  auto back = CollectionSnapshot::FromJson(progress, page);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ns.db, "shop");
  EXPECT_EQ(back->ns.collection, "orders");
  EXPECT_EQ(back->done, plan.done);
  EXPECT_EQ(back->documents, plan.documents);
  EXPECT_EQ(back->copied, plan.copied);
  EXPECT_EQ(Describe(*back), Describe(plan));

  // Without its pages (as `status` reads it) the record still says how far the copy is.
  auto counts = CollectionSnapshot::FromJson(progress);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->done.size(), 100000u);
  EXPECT_EQ(counts->chunks_done(), 99003);
}

TEST(CollectionSnapshotTest, AMissingPlanPageIsAnErrorNamingIt) {
  CollectionSnapshot plan = LargePlan(20000);
  std::vector<std::string> pages = plan.PlanPages();
  ASSERT_GT(pages.size(), 2u);
  auto without_page_1 = [&](size_t p) -> std::optional<std::string> {
    if (p == 1 || p >= pages.size()) return std::nullopt;
    return pages[p];
  };
  auto back = CollectionSnapshot::FromJson(plan.ProgressJson(), without_page_1);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("shop.orders, page 1, is missing"), std::string::npos)
      << back.status().ToString();
}

TEST(CollectionSnapshotTest, ACompleteSnapshotNeedsNoPlanPages) {
  CollectionSnapshot plan = LargePlan(3);
  plan.done.assign(3, true);
  auto back = CollectionSnapshot::FromJson(plan.ProgressJson(), [](size_t) { return std::nullopt; });
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->complete());
}

TEST(CollectionSnapshotTest, AVersion1RecordWithTheWholePlanIsStillRead) {
  std::string v1 =
      R"({"v":1,"db":"shop","collection":"orders","chunks":[{"type":"number","lo":null,"hi":"{ \"v\" : 3 }"},)"
      R"({"type":"number","lo":"{ \"v\" : 3 }","hi":null}],"done":[true,false],"documents":4,"copied":2})";
  auto back = CollectionSnapshot::FromJson(v1, [](size_t) { return std::nullopt; });
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(Describe(*back), (std::vector<std::string>{"number open { \"v\" : 3 }", "number { \"v\" : 3 } open"}));
  EXPECT_EQ(back->done, (std::vector<bool>{true, false}));
  EXPECT_EQ(back->copied, 2);
}


// A document of `bytes` bytes of BSON.
SnapshotRecord RecordOf(int id, size_t bytes) {
  SnapshotRecord record;
  record.key = std::to_string(id);
  record.value = std::string(bytes - record.key.size(), 'x');
  return record;
}

constexpr auto kNoWait = std::chrono::milliseconds(0);

TEST(ChunkQueueTest, TheCurrentChunkAndTheChunksAheadEachGetHalfTheBound) {
  ChunkQueue queue(3, 4, 4000);
  ASSERT_EQ(queue.Take(), 0u);
  ASSERT_EQ(queue.Take(), 1u);
  ASSERT_EQ(RecordOf(0, 1000).bytes(), 1000);
  EXPECT_TRUE(queue.Put(0, RecordOf(0, 1000)));
  EXPECT_TRUE(queue.Put(0, RecordOf(1, 1000)));  // the current chunk: 2000 of its 2000
  EXPECT_TRUE(queue.Put(1, RecordOf(10, 1000)));
  EXPECT_TRUE(queue.Put(1, RecordOf(11, 1000)));  // ahead: 2000 of 2000
  EXPECT_EQ(queue.bytes(), 4000);

  // A third record of either waits until the publisher takes one of its half.
  std::atomic<bool> put{false};
  std::thread reader([&] { put = queue.Put(1, RecordOf(12, 1000)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(put.load());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kRecord);  // frees room in the current half only
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(put.load());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kRecord);
  queue.Finish(0, Status::OK());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kEnd);
  queue.Published();  // chunk 1 is current: its 2000 bytes fill the current half
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(put.load());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kRecord);
  reader.join();
  EXPECT_TRUE(put.load());
  EXPECT_EQ(queue.bytes(), 2000);
}

TEST(ChunkQueueTest, ARecordLargerThanHalfTheBoundGoesAloneWhenItsChunkIsCurrent) {
  ChunkQueue queue(2, 4, 4000);
  ASSERT_EQ(queue.Take(), 0u);
  ASSERT_EQ(queue.Take(), 1u);
  EXPECT_TRUE(queue.Put(0, RecordOf(0, 5000)));  // current and empty: in, alone
  std::atomic<bool> put{false};
  std::thread reader([&] { put = queue.Put(0, RecordOf(1, 100)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(put.load());  // nothing more while it is held
  ChunkQueue::Item big = queue.Next(kNoWait);
  ASSERT_EQ(big.kind, ChunkQueue::Item::kRecord);
  EXPECT_EQ(big.record->bytes(), 5000);
  reader.join();
  EXPECT_TRUE(put.load());

  // Ahead of the current chunk, the same record waits until its chunk is current.
  std::thread ahead([&] { put = queue.Put(1, RecordOf(2, 5000)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(queue.bytes(), 100);
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kRecord);
  queue.Finish(0, Status::OK());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kEnd);
  queue.Published();
  ahead.join();
  EXPECT_EQ(queue.bytes(), 5000);
}

TEST(ChunkQueueTest, ReadySaysWhetherTheCurrentChunkHasSomethingNow) {
  ChunkQueue queue(2, 4, 1 << 20);
  EXPECT_FALSE(queue.Ready());  // nothing taken yet
  ASSERT_EQ(queue.Take(), 0u);
  ASSERT_EQ(queue.Take(), 1u);
  EXPECT_TRUE(queue.Put(1, RecordOf(10, 100)));
  EXPECT_FALSE(queue.Ready());  // records of a chunk ahead do not count
  EXPECT_TRUE(queue.Put(0, RecordOf(0, 100)));
  EXPECT_TRUE(queue.Ready());
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kRecord);
  EXPECT_FALSE(queue.Ready());
  queue.Finish(0, Status::OK());
  EXPECT_TRUE(queue.Ready());  // its end
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kEnd);
  queue.Published();
  EXPECT_TRUE(queue.Ready());  // chunk 1, read ahead, is current now
}

TEST(ChunkQueueTest, ReadersStayWithinTheWindowAndStopWhenAbandoned) {
  ChunkQueue queue(10, 2, 1 << 20);
  ASSERT_EQ(queue.Take(), 0u);
  ASSERT_EQ(queue.Take(), 1u);
  std::optional<size_t> third;
  std::thread reader([&] { third = queue.Take(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  queue.Finish(0, Status::Invalid("lost"));
  ChunkQueue::Item end = queue.Next(kNoWait);
  ASSERT_EQ(end.kind, ChunkQueue::Item::kEnd);
  EXPECT_EQ(end.status.message(), "lost");
  queue.Published();
  reader.join();
  EXPECT_EQ(third, 2u);
  EXPECT_EQ(queue.Next(kNoWait).kind, ChunkQueue::Item::kNothingYet);
  queue.Abandon();
  EXPECT_FALSE(queue.Take());
  EXPECT_FALSE(queue.Put(1, RecordOf(0, 100)));
}

}  // namespace
}  // namespace m2m::capture
