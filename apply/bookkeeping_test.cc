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

TEST(BookkeepingTest, QuarantineKeepsRawBytesAndNulls) {
  QuarantinedEvent e{"t", 2, 40, std::nullopt, std::string("\x00{x", 3), "cannot decode"};
  EXPECT_EQ(InsertQuarantineSql("g", {e}),
            "INSERT INTO _m2m_quarantine (group_id, topic, `partition`, `offset`, msg_key, raw_event, error, at) "
            "VALUES ('g','t',2,40,NULL,X'007B78','cannot decode',UTC_TIMESTAMP(3))");
  EXPECT_EQ(InsertQuarantineSql("g", {}), "");
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

}  // namespace
}  // namespace m2m::apply
