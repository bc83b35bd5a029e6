// Prometheus metrics: a registry of named values and a minimal HTTP server that serves them at
// /metrics in the text exposition format (version 0.0.4), without a client library (Debian 12 has
// none packaged).
//
// The registry does not own the numbers: each metric reads a value the daemon keeps anyway (the
// atomics of CaptureStats/ApplyStats, a CounterVec) when it is scraped, so the hot paths of capture
// and apply pay nothing for metrics beyond what they count already.
//
// Thread safety: register every metric before MetricsServer::Start. The reader functions run on the
// server's thread while the daemon runs on its own: they may only read atomics, CounterVecs or other
// state that is safe to read concurrently. CounterVec is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "m2m/status.h"

namespace m2m {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Counts per value of one label (events per collection); Add and Values from any thread.
class CounterVec {
 public:
  void Add(const std::string& label_value, int64_t by = 1);
  std::map<std::string, int64_t> Values() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> values_;
};

enum class MetricType { kCounter, kGauge };

class MetricsRegistry {
 public:
  // `common` labels are added to every sample, e.g. {{"capture", "shop"}}.
  explicit MetricsRegistry(MetricLabels common = {}) : common_(std::move(common)) {}

  // One sample whose value `read` returns at scrape time. A counter's name ends in _total.
  void Add(std::string name, MetricType type, std::string help, std::function<double()> read);
  // One sample per value of `vec`, labelled `label`="<value>".
  void AddVec(std::string name, MetricType type, std::string help, std::string label, const CounterVec* vec);

  // Every metric in the text exposition format, families in registration order.
  std::string Render() const;

 private:
  struct Family {
    std::string name, help;
    MetricType type;
    std::function<double()> read;  // single sample
    std::string label;             // with vec
    const CounterVec* vec = nullptr;
  };
  MetricLabels common_;
  std::vector<Family> families_;
};

// Adds process_resident_memory_bytes (VmRSS of /proc/self/status) and process_start_time_seconds.
void AddProcessMetrics(MetricsRegistry& registry);

// A label value escaped for the exposition format (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);

struct MetricsServerOptions {
  // Address to listen on. Default: 127.0.0.1 (the endpoint has no authentication; serving other
  // hosts, e.g. 0.0.0.0 for a Prometheus elsewhere, is a choice to make explicitly)
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (see MetricsServer::port). Default: 0
  int port = 0;

  Status Validate() const;
};

// Serves GET /metrics (anything else: 404) on its own thread, one connection at a time: a scrape
// renders in microseconds, and one scraper per daemon is the normal case. A client gets
// kClientTimeout to send its request, and kClientTimeout again to take the answer, so one that
// stalls (stops reading, or sends slowly) cannot hold up the next scrape for longer.
class MetricsServer {
 public:
  // Binds and starts serving `registry`, which must outlive the server. Fails when the address
  // cannot be bound (port in use).
  static Result<std::unique_ptr<MetricsServer>> Start(const MetricsRegistry& registry, MetricsServerOptions options);
  // Stops the thread and closes the socket.
  ~MetricsServer();
  // The port listened on (the chosen one when options.port was 0).
  int port() const { return port_; }

  static constexpr std::chrono::seconds kClientTimeout{5};

 private:
  MetricsServer(const MetricsRegistry& registry, int fd, int port);
  void Serve();

  const MetricsRegistry& registry_;
  int fd_;
  int port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace m2m
