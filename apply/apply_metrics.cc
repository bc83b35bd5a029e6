// The metrics apply serves at /metrics (docs/operations.md has the table).
#include <chrono>
#include <limits>

#include "apply.h"

namespace m2m::apply {

void RegisterMetrics(const ApplyStats& s, MetricsRegistry& r) {
  auto value = [](const std::atomic<int64_t>& v) { return [&v] { return static_cast<double>(v.load()); }; };
  r.Add("m2m_apply_events_total", MetricType::kCounter, "Events applied and committed (quarantined ones included).",
        value(s.events));
  r.AddVec("m2m_apply_topic_events_total", MetricType::kCounter, "Events applied and committed, per topic.", "topic",
           &s.events_by_topic);
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
}

}  // namespace m2m::apply
