#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "apply.h"

namespace m2m::apply {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

// The value of the sample that starts with `prefix` in the rendering of `stats`' metrics.
double Sample(const ApplyStats& stats, const std::string& prefix) {
  MetricsRegistry registry(MetricLabels{{"group", "g"}});
  RegisterMetrics(stats, registry);
  std::string text = registry.Render();
  auto at = text.find("\n" + prefix + " ");
  if (at == std::string::npos) return NAN;
  return std::stod(text.substr(at + prefix.size() + 2));
}

TEST(ApplyMetricsTest, EventAgesAreMeasuredFromTheWallTimeToTheCommit) {
  ApplyStats stats;
  const system_clock::time_point committed(milliseconds(1'700'000'010'000));
  // 10 s, 3 ms and -2 s (MongoDB's clock ahead of apply's: age 0) before the commit.
  stats.RecordBatch(4, 0.02, {1'700'000'000'000, 1'700'000'009'997, 1'700'000'012'000}, committed);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_event_age_seconds_count{group="g"})"), 3);
  EXPECT_DOUBLE_EQ(Sample(stats, R"(m2m_apply_event_age_seconds_sum{group="g"})"), 10.003);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_event_age_seconds_bucket{group="g",le="0.001"})"), 1);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_event_age_seconds_bucket{group="g",le="0.005"})"), 2);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_event_age_seconds_bucket{group="g",le="10"})"), 3);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_batch_events_count{group="g"})"), 1);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_batch_events_sum{group="g"})"), 4);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_batch_events_bucket{group="g",le="2"})"), 0);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_batch_events_bucket{group="g",le="5"})"), 1);
  EXPECT_DOUBLE_EQ(Sample(stats, R"(m2m_apply_batch_duration_seconds_sum{group="g"})"), 0.02);
  // A commit that moved no event (a tombstone-free empty batch never commits; nothing to count).
  stats.RecordBatch(0, 0.01, {}, committed);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_batch_events_count{group="g"})"), 1);
}

TEST(ApplyMetricsTest, LagIsKeptPerPartitionAndSummed) {
  ApplyStats stats;
  stats.RecordLag({{{"m2m.a", 0}, 5}, {{"m2m.a", 1}, 0}, {{"m2m.b", 0}, 2}});
  EXPECT_EQ(stats.lag_events.load(), 7);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_partition_lag_events{group="g",topic="m2m.a",partition="0"})"), 5);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_partition_lag_events{group="g",topic="m2m.b",partition="0"})"), 2);
  // After a rebalance took m2m.a away, its partitions are no longer reported.
  stats.RecordLag({{{"m2m.b", 0}, 0}});
  EXPECT_EQ(stats.lag_events.load(), 0);
  EXPECT_TRUE(std::isnan(Sample(stats, R"(m2m_apply_partition_lag_events{group="g",topic="m2m.a",partition="0"})")));
  EXPECT_EQ(Sample(stats, R"(m2m_apply_partition_lag_events{group="g",topic="m2m.b",partition="0"})"), 0);
  EXPECT_EQ(Sample(stats, R"(m2m_apply_lag_events{group="g"})"), 0);
}

}  // namespace
}  // namespace m2m::apply
