// The metrics apply serves at /metrics (docs/metrics.md has the table), and what apply records for them.
#include <algorithm>
#include <chrono>
#include <limits>

#include "apply.h"

namespace m2m::apply {

void ApplyStats::RecordBatch(int events, double seconds, const std::vector<int64_t>& event_ms,
                             std::chrono::system_clock::time_point committed_at) {
  if (events <= 0) return;
  batch_events.Observe(events);
  batch_seconds.Observe(seconds);
  const double now_ms = std::chrono::duration<double, std::milli>(committed_at.time_since_epoch()).count();
  for (int64_t ms : event_ms) event_age.Observe(std::max(now_ms - static_cast<double>(ms), 0.0) / 1000);
}

void ApplyStats::RecordLag(const std::map<PartitionId, int64_t>& by_partition) {
  std::map<LabelledValues::Key, int64_t> labelled;
  int64_t total = 0;
  for (const auto& [tp, lag] : by_partition) {
    labelled[{tp.first, std::to_string(tp.second)}] = lag;
    total += lag;
  }
  lag_by_partition.Replace(std::move(labelled));
  lag_events = total;
}

void RegisterMetrics(const ApplyStats& s, MetricsRegistry& r) {
  auto value = [](const std::atomic<int64_t>& v) { return [&v] { return static_cast<double>(v.load()); }; };
  r.Add("m2m_apply_events_total", MetricType::kCounter, "Events applied and committed (quarantined ones included).",
        value(s.events));
  r.AddVec("m2m_apply_topic_events_total", MetricType::kCounter, "Events applied and committed, per topic.", {"topic"},
           &s.events_by_topic);
  r.AddVec("m2m_apply_partition_events_total", MetricType::kCounter,
           "Events applied and committed, per partition (of those this process applied since it started).",
           {"topic", "partition"}, &s.events_by_partition);
  r.Add("m2m_apply_batches_total", MetricType::kCounter, "MySQL transactions committed.", value(s.batches));
  r.Add("m2m_apply_quarantined_total", MetricType::kCounter, "Events written to _m2m_quarantine.",
        value(s.quarantined));
  r.Add("m2m_apply_ddl_statements_total", MetricType::kCounter,
        "Schema statements run: CREATE TABLE, ALTER TABLE, RENAME TABLE, DROP TABLE.", value(s.ddl_statements));
  r.Add("m2m_apply_errors_total", MetricType::kCounter,
        "Batches abandoned after a retriable error (lost connection, deadlock, broker away) and redone.",
        value(s.retries));
  // A partition not started yet has an unknown lag: NaN, never a reassuring 0.
  r.Add("m2m_apply_lag_events", MetricType::kGauge,
        "Offsets between apply's positions and the ends of the partitions it owns (commit markers included); "
        "NaN while some of them are not started (m2m_apply_partitions_waiting).",
        [&s] {
          return s.partitions_waiting.load() > 0 ? std::numeric_limits<double>::quiet_NaN()
                                                 : static_cast<double>(s.lag_events.load());
        });
  r.AddVec("m2m_apply_partition_lag_events", MetricType::kGauge,
           "Offsets between apply's position and the end of each partition it owns and has started (commit "
           "markers included), as the last fetch reported.",
           {"topic", "partition"}, &s.lag_by_partition);
  r.Add("m2m_apply_partitions_waiting", MetricType::kGauge,
        "Partitions assigned to apply that it cannot start yet: their stored offsets cannot be read (MySQL "
        "unreachable). Nothing of them is applied meanwhile.",
        value(s.partitions_waiting));
  r.Add("m2m_apply_last_event_timestamp_seconds", MetricType::kGauge,
        "Kafka timestamp of the last event applied (0 before the first).",
        [&s] { return static_cast<double>(s.last_event_ms.load()) / 1000; });
  r.Add("m2m_apply_lag_seconds", MetricType::kGauge,
        "While events wait or partitions are not started: now minus the Kafka timestamp of the last event "
        "applied (NaN when none was); 0 when caught up.",
        [&s] {
          int64_t last = s.last_event_ms.load();
          bool waiting = s.partitions_waiting.load() > 0;
          if (waiting && last == 0) return std::numeric_limits<double>::quiet_NaN();
          if ((s.lag_events.load() <= 0 && !waiting) || last == 0) return 0.0;
          auto now = std::chrono::system_clock::now().time_since_epoch();
          return std::max(std::chrono::duration<double>(now).count() - static_cast<double>(last) / 1000, 0.0);
        });
  r.AddHistogram("m2m_apply_event_age_seconds",
                 "From a change event's MongoDB wall time (cluster time before MongoDB 6.0) to the MySQL commit "
                 "that applied it: the pipeline's end-to-end latency. Snapshot reads are not counted.",
                 &s.event_age);
  r.AddHistogram("m2m_apply_batch_events", "Events per MySQL transaction committed.", &s.batch_events);
  r.AddHistogram("m2m_apply_batch_duration_seconds",
                 "Time to write a batch and commit it: DDL, document lookups, row statements, COMMIT.",
                 &s.batch_seconds);
}

}  // namespace m2m::apply
