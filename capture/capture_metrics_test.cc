#include <gtest/gtest.h>

#include <chrono>

#include "capture.h"

namespace m2m::capture {
namespace {

TEST(CaptureMetricsTest, BatchesWithEventsAreCountedOthersNot) {
  CaptureStats stats;
  stats.RecordBatch(0, std::chrono::milliseconds(5));  // a snapshot chunk or an idle checkpoint
  stats.RecordBatch(3, std::chrono::milliseconds(250));
  stats.RecordBatch(1000, std::chrono::seconds(2));
  MetricsRegistry registry(MetricLabels{{"capture", "shop"}});
  RegisterMetrics(stats, registry);
  std::string text = registry.Render();
  for (const char* sample : {"m2m_capture_batch_events_count{capture=\"shop\"} 2\n",
                             "m2m_capture_batch_events_sum{capture=\"shop\"} 1003\n",
                             "m2m_capture_batch_events_bucket{capture=\"shop\",le=\"5\"} 1\n",
                             "m2m_capture_batch_events_bucket{capture=\"shop\",le=\"1000\"} 2\n",
                             "m2m_capture_batch_duration_seconds_count{capture=\"shop\"} 2\n",
                             "m2m_capture_batch_duration_seconds_sum{capture=\"shop\"} 2.25\n",
                             "m2m_capture_batch_duration_seconds_bucket{capture=\"shop\",le=\"0.25\"} 1\n",
                             "# TYPE m2m_capture_lag_seconds gauge\n"}) {
    EXPECT_NE(text.find(sample), std::string::npos) << sample << " in\n" << text;
  }
}

}  // namespace
}  // namespace m2m::capture
