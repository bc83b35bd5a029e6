#include "bookkeeping.h"

#include <gtest/gtest.h>

namespace m2m::apply {
namespace {

TEST(BookkeepingTest, OffsetsAreUpsertedPerGroupAndPartition) {
  std::string sql = UpsertOffsetsSql("g'1", {{{"t.a", 0}, 12}, {{"t.a", 3}, 7}}, {{{"t.a", 0}, {5, 1700000000123}}});
  EXPECT_EQ(sql,
            "INSERT INTO _m2m_offsets (group_id, topic, `partition`, next_offset, applied_events, last_event_ms, "
            "updated_at) VALUES ('g\\'1','t.a',0,12,5,1700000000123,UTC_TIMESTAMP(3)),"
            "('g\\'1','t.a',3,7,0,NULL,UTC_TIMESTAMP(3)) "
            "ON DUPLICATE KEY UPDATE next_offset=VALUES(next_offset), applied_events=applied_events+VALUES(applied_events), "
            "last_event_ms=COALESCE(VALUES(last_event_ms), last_event_ms), updated_at=VALUES(updated_at)");
}

TEST(BookkeepingTest, OffsetsAreLockedOnlyForTheBatchPartitions) {
  EXPECT_EQ(SelectOffsetsSql("g", {{"t", 1}, {"u", 0}}, true),
            "SELECT topic, `partition`, next_offset FROM _m2m_offsets WHERE group_id='g' AND "
            "(topic,`partition`) IN (('t',1),('u',0)) FOR UPDATE");
  EXPECT_EQ(SelectOffsetsSql("g", {}, false), "SELECT topic, `partition`, next_offset FROM _m2m_offsets WHERE group_id='g'");
}

// The copies of one drop meet in one set of rows: its topic and cluster time, one row per partition.
TEST(BookkeepingTest, CopiesOfACollectionEventAreRecordedPerPartitionAndExecutedOnce) {
  CollectionEventCopy copy{{"m2m.db.c", 1700000000, 7}, 1, 42, "drop", 2};
  EXPECT_EQ(InsertCopyArrivalSql("g", copy),
            "INSERT IGNORE INTO _m2m_collection_events (group_id, topic, cluster_t, cluster_i, `partition`, `offset`, "
            "event, copies, arrived_at, executed_at) VALUES ('g','m2m.db.c',1700000000,7,1,42,'drop',2,"
            "UTC_TIMESTAMP(3),NULL)");
  EXPECT_TRUE(MarkCollectionEventExecutedSql("g", copy).ends_with(
      "VALUES ('g','m2m.db.c',1700000000,7,1,42,'drop',2,UTC_TIMESTAMP(3),UTC_TIMESTAMP(3)) "
      "ON DUPLICATE KEY UPDATE executed_at = VALUES(executed_at)"));
  EXPECT_EQ(SelectCollectionEventSql("g", copy.id),
            "SELECT `partition`, executed_at IS NOT NULL FROM _m2m_collection_events WHERE group_id='g' AND "
            "topic='m2m.db.c' AND cluster_t=1700000000 AND cluster_i=7");
}

TEST(BookkeepingTest, QuarantineKeepsRawBytesAndNulls) {
  QuarantinedEvent e{"t", 2, 40, std::nullopt, std::string("\x00{x", 3), "cannot decode"};
  EXPECT_EQ(InsertQuarantineSql("g", {e}, 1 << 20),
            std::vector<std::string>{
                "INSERT INTO _m2m_quarantine (group_id, topic, `partition`, `offset`, msg_key, raw_event, error, at) "
                "VALUES ('g','t',2,40,NULL,X'007B78','cannot decode',UTC_TIMESTAMP(3))"});
  EXPECT_TRUE(InsertQuarantineSql("g", {}, 1 << 20).empty());
}

TEST(BookkeepingTest, ARawEventTooLargeForOneStatementGoesInPartsAndNoStatementIsOverTheLimit) {
  std::string raw(1000, 'a');
  raw[999] = 'z';
  QuarantinedEvent small{"t", 0, 1, std::string("k"), std::string("v"), "e1"};
  QuarantinedEvent big{"t", 0, 2, std::string("k"), raw, "row too large"};
  auto sql = InsertQuarantineSql("g", {small, big, small}, 700);
  for (const std::string& s : sql) EXPECT_LE(s.size(), 700u) << s;
  ASSERT_EQ(sql.size(), 7u);  // the small one, the big one's row, its 4 parts, the last small one
  EXPECT_NE(sql[0].find("X'76','e1'"), std::string::npos) << sql[0];
  EXPECT_NE(sql[1].find("X'6B',NULL,'row too large (raw_event: 1000 bytes, in _m2m_quarantine_parts)'"),
            std::string::npos) << sql[1];
  std::string joined;
  for (size_t i = 2; i < 6; ++i) {
    std::string head = "INSERT INTO _m2m_quarantine_parts (quarantine_id, part, bytes) VALUES (LAST_INSERT_ID()," +
                       std::to_string(i - 2) + ",X'";
    ASSERT_EQ(sql[i].rfind(head, 0), 0u) << sql[i];
    joined += sql[i].substr(head.size(), sql[i].size() - head.size() - 2);
  }
  std::string hex;
  for (int i = 0; i < 999; ++i) hex += "61";
  EXPECT_EQ(joined, hex + "7A");
  EXPECT_NE(sql[6].find("X'76','e1'"), std::string::npos);
}

TEST(BookkeepingTest, OnlyErrorsAboutTheEventQuarantineIt) {
  EXPECT_TRUE(IsEventError(Status::Mapping("orders _id=1 field a: does not fit")));
  EXPECT_TRUE(IsEventError(Status(StatusCode::kMysql, "Too many columns", false, 1117)));
  EXPECT_TRUE(IsEventError(Status(StatusCode::kMysql, "Data too long", false, 1406)));
  EXPECT_FALSE(IsEventError(Status(StatusCode::kMysql, "Deadlock", true, 1213)));
  EXPECT_FALSE(IsEventError(Status(StatusCode::kMysql, "Access denied", false, 1142)));
  EXPECT_FALSE(IsEventError(Status(StatusCode::kMysql, "Duplicate column name", false, 1060)));
  EXPECT_FALSE(IsEventError(Status(StatusCode::kKafka, "broker down", true, 0)));
  EXPECT_FALSE(IsEventError(Status::OK()));
}

TEST(BookkeepingTest, APartitionStartsAtItsStoredOffsetWhileKafkaHoldsIt) {
  std::string lost;
  auto start = [&](std::optional<int64_t> stored, int64_t first, int64_t end) {
    auto r = StartOffset("g", {"t", 0}, stored, first, end, false, &lost);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : -100;
  };
  EXPECT_EQ(start(std::nullopt, 500, 900), kOffsetBeginning);  // nothing applied yet
  EXPECT_EQ(start(500, 500, 900), 500);
  EXPECT_EQ(start(700, 500, 900), 700);
  EXPECT_EQ(start(900, 500, 900), 900);  // caught up
  EXPECT_EQ(start(0, 0, 0), 0);
  EXPECT_EQ(lost, "");
}

TEST(BookkeepingTest, AStoredOffsetKafkaNoLongerHoldsIsAnErrorNamingTheGap) {
  std::string lost;
  auto deleted = StartOffset("shop", {"m2m.shop.orders", 2}, 120, 400, 900, false, &lost);
  ASSERT_FALSE(deleted.ok());
  EXPECT_EQ(deleted.status().code(), StatusCode::kHistoryLost);
  EXPECT_FALSE(deleted.status().retriable());
  const std::string& m = deleted.status().message();
  EXPECT_NE(m.find("events 120..399 of m2m.shop.orders[2] are no longer in Kafka"), std::string::npos) << m;
  EXPECT_NE(m.find("applied up to offset 120"), std::string::npos) << m;
  EXPECT_NE(m.find("first offset is now 400"), std::string::npos) << m;
  EXPECT_NE(m.find("--resnapshot"), std::string::npos) << m;
  EXPECT_NE(m.find("--accept-lost-events"), std::string::npos) << m;

  auto recreated = StartOffset("shop", {"m2m.shop.orders", 0}, 950, 0, 30, false, &lost);
  ASSERT_FALSE(recreated.ok());
  EXPECT_NE(recreated.status().message().find("m2m.shop.orders[0] ends at offset 30, before offset 950"),
            std::string::npos)
      << recreated.status().message();
  EXPECT_EQ(lost, "");
}

TEST(BookkeepingTest, AcceptingLostEventsStartsAtTheFirstOffsetAndSaysWhatWasLost) {
  std::string lost;
  auto deleted = StartOffset("shop", {"t", 1}, 120, 400, 900, true, &lost);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 400);
  EXPECT_NE(lost.find("events 120..399 of t[1]"), std::string::npos) << lost;
  EXPECT_NE(lost.find("continuing at offset 400"), std::string::npos) << lost;
  auto recreated = StartOffset("shop", {"t", 1}, 950, 0, 30, true, &lost);
  ASSERT_TRUE(recreated.ok());
  EXPECT_EQ(*recreated, 0);
}

}  // namespace
}  // namespace m2m::apply
