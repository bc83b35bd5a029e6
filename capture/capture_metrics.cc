// The metrics capture serves at /metrics (docs/metrics.md has the table).
#include <chrono>

#include "capture.h"

namespace m2m::capture {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void CaptureStats::RecordBatch(int events, std::chrono::steady_clock::duration took) {
  if (events <= 0) return;
  batch_events.Observe(events);
  batch_seconds.Observe(std::chrono::duration<double>(took).count());
}

void RegisterMetrics(const CaptureStats& s, MetricsRegistry& r) {
  auto value = [](const std::atomic<int64_t>& v) { return [&v] { return static_cast<double>(v.load()); }; };
  r.Add("m2m_capture_events_total", MetricType::kCounter,
        "Change events published to Kafka (events of an aborted batch count again when republished).",
        value(s.events));
  r.AddVec("m2m_capture_collection_events_total", MetricType::kCounter, "Change events published, per collection.",
           {"collection"}, &s.events_by_collection);
  r.Add("m2m_capture_snapshot_documents_total", MetricType::kCounter, "Documents copied by the snapshot.",
        value(s.snapshot_documents));
  r.Add("m2m_capture_transactions_total", MetricType::kCounter, "Kafka transactions committed.",
        value(s.transactions));
  r.Add("m2m_capture_dead_letters_total", MetricType::kCounter, "Events written to the dead-letter topic.",
        value(s.dead_letters));
  r.Add("m2m_capture_errors_total", MetricType::kCounter,
        "Batches abandoned after a retriable error and redone from the last checkpoint.", value(s.errors));
  r.Add("m2m_capture_last_event_timestamp_seconds", MetricType::kGauge,
        "Cluster time of the last change event read (0 before the first).", value(s.last_cluster_time_s));
  r.Add("m2m_capture_lag_seconds", MetricType::kGauge,
        "Now minus the cluster time of the last event read; 0 while the change stream has nothing waiting.",
        [&s] {
          int64_t last = s.last_cluster_time_s.load();
          return s.stream_idle.load() || last == 0 ? 0.0 : std::max(NowSeconds() - static_cast<double>(last), 0.0);
        });
  r.Add("m2m_capture_oplog_window_seconds", MetricType::kGauge,
        "Time span of the oplog, read each minute (0 while unknown: no read access to local.oplog.rs).",
        value(s.oplog_window_s));
  r.AddHistogram("m2m_capture_batch_events", "Change events per Kafka transaction (transactions with events only).",
                 &s.batch_events);
  r.AddHistogram("m2m_capture_batch_duration_seconds",
                 "From a transaction's first change event to its commit: reading, converting and producing its "
                 "events, and the commit.",
                 &s.batch_seconds);
}

}  // namespace m2m::capture
