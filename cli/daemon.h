// What the long-running subcommands (capture, apply) share: librdkafka properties from --kafka
// key=value, stopping cleanly on SIGINT or SIGTERM, even when the signal comes during start-up, the
// Prometheus endpoint (--metrics-port), and telling systemd how they are doing (Type=notify units,
// deploy/systemd/, docs/deployment.md).
#pragma once

#include <CLI/CLI.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "m2m/kafka_client.h"
#include "m2m/logging.h"
#include "m2m/metrics.h"
#include "m2m/status.h"
#include "settings.h"

namespace m2m::cli {

// --log-format and --log-level, as every command that logs takes them.
struct LogFlags {
  std::string format;
  std::string level;
};

// Adds --log-format and --log-level (cli/settings.cc) of `command` to `cmd`.
void AddLogOptions(CLI::App* cmd, Command command, LogFlags& flags);

// Sets up spdlog's default logger as `flags` say; JSON lines carry `fields`. Call before the daemon's
// threads start.
Status StartLogging(const LogFlags& flags, LogFields fields, bool to_stderr = false);

// Adds each "key=value" of `props` to `config`; anything else is an error naming it.
Status AddKafkaProperties(const std::vector<std::string>& props, KafkaConfig& config);

// True for librdkafka properties that hold a secret: passwords, private keys, OAuth client secrets.
bool IsSecretKafkaProperty(std::string_view key);

// Refuses a secret Kafka property in `args`, the command line as typed (before a --config file is
// expanded into it): any user of the machine can read a process's argv (ps, /proc). The error names
// the property and says how to pass it instead: a config file, with the value from the environment.
Status RefuseSecretsOnCommandLine(const std::vector<std::string>& args);

// From now on SIGINT and SIGTERM ask the running daemon to stop (or stop it as soon as it runs).
void InstallStopSignals();

// Where a daemon serves /metrics; none unless a port is given.
struct MetricsFlags {
  int port = -1;  // -1: no endpoint; 0: any free port (logged)
  std::string host = MetricsServerOptions{}.host;
};

// Adds --metrics-port and --metrics-host of `command` to `cmd` (config file: metrics: {port: 9187}).
void AddMetricsOptions(CLI::App* cmd, Command command, MetricsFlags& flags);

// Serves `registry` as flags say and logs the address; nullptr when flags.port is -1.
Result<std::unique_ptr<MetricsServer>> StartMetricsServer(const MetricsFlags& flags, const MetricsRegistry& registry);

namespace detail {
using StopFn = void (*)(void*);
void SetStopTarget(void* daemon, StopFn stop);
}  // namespace detail

// Tells the service manager how a daemon is doing, through sd_notify(3) (a systemd unit of
// Type=notify): READY=1 once `ready()` turns true, STATUS= lines from `status()` (at most every 5 s,
// when changed), WATCHDOG=1 at half the unit's WatchdogSec= when it sets one, and STOPPING=1 as soon
// as SIGINT or SIGTERM asks for a stop (or the daemon ends on its own). Without NOTIFY_SOCKET in the
// environment, i.e. not started by such a unit, it does nothing and starts no thread.
// `ready` and `status` are called on the notifier's thread, so they read only atomics.
class ServiceNotifier {
 public:
  ServiceNotifier(std::function<bool()> ready, std::function<std::string()> status);
  // Sends STOPPING=1 (if the stop was not asked for by a signal) and a last STATUS= naming `outcome`.
  void Finish(const Status& outcome);
  ~ServiceNotifier();  // Finish(OK) unless called

 private:
  void Loop();

  std::function<bool()> ready_;
  std::function<std::string()> status_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool done_ = false;
  bool finished_ = false;
  bool stopping_sent_ = false;  // guarded by mu_ once the thread runs
  std::thread thread_;
};

// Makes the daemon (with InstallStopSignals already called), serves its metrics (labelled `labels`)
// when `metrics` asks for it, runs it until it returns, and returns its Status, telling a service
// manager about it (ServiceNotifier) on the way. `Daemon` has Run(), RequestStop() (callable from a
// signal handler) and stats(), for which RegisterMetrics(stats, registry) is declared next to the
// stats type; stats().ready says when it has connected and runs. `status` renders its stats as a
// systemd STATUS= line.
template <typename Daemon, typename Stats = std::remove_cvref_t<decltype(std::declval<Daemon&>().stats())>>
Status RunDaemon(Result<std::unique_ptr<Daemon>> made, const MetricsFlags& metrics, MetricLabels labels,
                 std::string (*status)(const Stats&)) {
  if (!made.ok()) return made.status();
  std::unique_ptr<Daemon> daemon = std::move(made).value();
  MetricsRegistry registry(std::move(labels));
  RegisterMetrics(daemon->stats(), registry);
  AddProcessMetrics(registry);
  auto server = StartMetricsServer(metrics, registry);  // stops before the daemon and registry go
  if (!server.ok()) return server.status();
  const Stats& stats = daemon->stats();
  ServiceNotifier notifier([&stats] { return stats.ready.load(); }, [&stats, status] { return status(stats); });
  detail::SetStopTarget(daemon.get(), [](void* d) { static_cast<Daemon*>(d)->RequestStop(); });
  Status st = daemon->Run();
  detail::SetStopTarget(nullptr, nullptr);
  notifier.Finish(st);
  return st;
}

}  // namespace m2m::cli
