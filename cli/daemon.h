// What the long-running subcommands (capture, apply) share: librdkafka properties from --kafka
// key=value, stopping cleanly on SIGINT or SIGTERM, even when the signal comes during start-up, and
// the Prometheus endpoint (--metrics-port).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "m2m/kafka_client.h"
#include "m2m/metrics.h"
#include "m2m/status.h"

namespace m2m::cli {

// Adds each "key=value" of `props` to `config`; anything else is an error naming it.
Status AddKafkaProperties(const std::vector<std::string>& props, KafkaConfig& config);

// The --help text of every --kafka option.
inline constexpr char kKafkaPropertyHelp[] =
    "A librdkafka property key=value (repeatable), e.g. sasl.username=u; secrets (sasl.password, ...) only in "
    "a --config file";

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

// Adds --metrics-port and --metrics-host to `cmd` (config file: metrics: {port: 9187}).
void AddMetricsOptions(CLI::App* cmd, MetricsFlags& flags);

// Serves `registry` as flags say and logs the address; nullptr when flags.port is -1.
Result<std::unique_ptr<MetricsServer>> StartMetricsServer(const MetricsFlags& flags, const MetricsRegistry& registry);

namespace detail {
using StopFn = void (*)(void*);
void SetStopTarget(void* daemon, StopFn stop);
}  // namespace detail

// Makes the daemon (with InstallStopSignals already called), serves its metrics (labelled `labels`)
// when `metrics` asks for it, runs it until it returns, and returns its Status. `Daemon` has Run(),
// RequestStop() (callable from a signal handler) and stats(), for which RegisterMetrics(stats,
// registry) is declared next to the stats type.
template <typename Daemon>
Status RunDaemon(Result<std::unique_ptr<Daemon>> made, const MetricsFlags& metrics, MetricLabels labels) {
  if (!made.ok()) return made.status();
  std::unique_ptr<Daemon> daemon = std::move(made).value();
  MetricsRegistry registry(std::move(labels));
  RegisterMetrics(daemon->stats(), registry);
  AddProcessMetrics(registry);
  auto server = StartMetricsServer(metrics, registry);  // stops before the daemon and registry go
  if (!server.ok()) return server.status();
  detail::SetStopTarget(daemon.get(), [](void* d) { static_cast<Daemon*>(d)->RequestStop(); });
  Status st = daemon->Run();
  detail::SetStopTarget(nullptr, nullptr);
  return st;
}

}  // namespace m2m::cli
