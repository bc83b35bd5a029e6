// Prometheus metrics, with prometheus-cpp (Debian 12's prometheus-cpp-dev): a registry of the metric
// families a daemon serves, and the HTTP endpoint (prometheus-cpp's Exposer, civetweb) that serves it
// at /metrics in the text exposition format 0.0.4. This is the one place that knows prometheus-cpp's
// registry and exposer; capture (capture_metrics.cc) and apply (apply_metrics.cc) add their families.
//
// The registry does not own the numbers: each family reads values the daemon keeps anyway (the
// atomics, LabelledValues and histograms of CaptureStats/ApplyStats) when it is scraped, so the hot
// paths pay for a metric no more than the counting they do anyway, and the stats outlive no registry:
// a daemon's stats exist before its registry does, and the Spark job keeps the same stats with none.
//
// Thread safety: add every family before MetricsServer::Start. The families are read on the server's
// threads while the daemon runs on its own: they may only read atomics, LabelledValues, histograms or
// other state that is safe to read concurrently. LabelledValues and prometheus::Histogram are safe
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>

#include "m2m/status.h"

namespace m2m {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Bucket bounds, in seconds, of the latency histograms (event age, batch durations): a real-time
// pipeline's range, from 1 ms (a batch of one event written) to 60 s (a stalled or catching-up
// pipeline; anything longer lands in +Inf, and the lag gauges say how long).
inline const std::vector<double> kSecondsBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                    0.5,   1,      2.5,   5,    10,   30,    60};
// Bucket bounds of the batch size histograms, in events: from one event (a quiet stream, a batch per
// write) to 100,000 (above the largest batches the options allow by default: apply 5000, capture 1000).
inline const std::vector<double> kBatchEventsBuckets = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                                        100000};

// Integer values per combination of label values: events per collection, lag per partition. A
// counter adds to its values; a gauge of a changing set (the partitions apply owns now) replaces them
// all at once. Any thread.
class LabelledValues {
 public:
  using Key = std::vector<std::string>;  // one value per label of the family, in its order

  void Add(const Key& labels, int64_t by = 1);
  void Replace(std::map<Key, int64_t> values);
  std::map<Key, int64_t> Values() const;

 private:
  mutable std::mutex mu_;
  std::map<Key, int64_t> values_;
};

enum class MetricType { kCounter, kGauge };

class MetricsRegistry {
 public:
  // `common` labels are added to every sample, e.g. {{"capture", "shop"}}.
  explicit MetricsRegistry(MetricLabels common = {}) : common_(std::move(common)) {}

  // One sample whose value `read` returns at scrape time. A counter's name ends in _total.
  void Add(std::string name, MetricType type, std::string help, std::function<double()> read);
  // One sample per entry of `values`, labelled with `labels` (as many as each entry has values).
  void AddVec(std::string name, MetricType type, std::string help, std::vector<std::string> labels,
              const LabelledValues* values);
  // A histogram (buckets _bucket{le=...}, _sum and _count). Its name ends in the unit (_seconds).
  void AddHistogram(std::string name, std::string help, const prometheus::Histogram* histogram);

  // Every family with its samples as of now, in registration order.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the text exposition format 0.0.4, as the endpoint serves it.
  std::string Render() const;

 private:
  struct Family {
    std::string name, help;
    MetricType type;
    std::function<double()> read;            // a single sample, or
    std::vector<std::string> labels;         // one per entry of
    const LabelledValues* values = nullptr;  // these, or
    const prometheus::Histogram* histogram = nullptr;
  };
  MetricLabels common_;
  std::vector<Family> families_;
};

// Adds process_resident_memory_bytes (VmRSS of /proc/self/status) and process_start_time_seconds.
void AddProcessMetrics(MetricsRegistry& registry);

struct MetricsServerOptions {
  // IPv4 address to listen on. Default: 127.0.0.1 (the endpoint has no authentication; serving other
  // hosts, e.g. 0.0.0.0 for a Prometheus elsewhere, is a choice to make explicitly)
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (see MetricsServer::port). Default: 0
  int port = 0;
  // Threads answering requests: one scraper per daemon is the normal case, and a second thread keeps
  // a slow client (one that stalls while sending its request or taking the answer) from holding up
  // the next scrape. Default: 2
  int threads = 2;
  // How long a client may take to send its request, and again to take the answer, before the server
  // drops it; a scrape renders in well under a millisecond. Default: 5 s
  std::chrono::milliseconds request_timeout = std::chrono::seconds(5);

  Status Validate() const;
};

// Serves GET /metrics (anything else: 404) on threads of its own, with prometheus-cpp's Exposer
// (civetweb). Keep-alive is off: each scrape is one connection, so an idle scraper holds no thread.
class MetricsServer {
 public:
  // Binds and starts serving `registry`, which must outlive the server. Fails when the options are
  // invalid or the address cannot be bound (port in use).
  static Result<std::unique_ptr<MetricsServer>> Start(const MetricsRegistry& registry, MetricsServerOptions options);
  // Stops the threads and closes the socket.
  ~MetricsServer();
  // The port listened on (the chosen one when options.port was 0).
  int port() const { return port_; }

 private:
  struct Impl;
  MetricsServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace m2m
