#include "daemon.h"

#include <atomic>
#include <csignal>

namespace m2m::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<void*> g_daemon{nullptr};
std::atomic<detail::StopFn> g_stop_fn{nullptr};

void OnSignal(int) {
  g_stop = true;
  void* daemon = g_daemon.load();
  detail::StopFn stop = g_stop_fn.load();
  if (daemon && stop) stop(daemon);
}

}  // namespace

Status AddKafkaProperties(const std::vector<std::string>& props, KafkaConfig& config) {
  for (const auto& kv : props) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return Status::Invalid("--kafka expects key=value, got '" + kv + "'");
    config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return Status::OK();
}

void InstallStopSignals() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
}

namespace detail {

void SetStopTarget(void* daemon, StopFn stop) {
  g_stop_fn = stop;
  g_daemon = daemon;
  // A signal that came before the daemon existed still stops it.
  if (daemon && stop && g_stop.load()) stop(daemon);
}

}  // namespace detail
}  // namespace m2m::cli
