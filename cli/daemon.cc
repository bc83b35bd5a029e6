#include "daemon.h"

#include <atomic>
#include <csignal>

#include <spdlog/spdlog.h>

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

bool IsSecretKafkaProperty(std::string_view key) {
  for (std::string_view secret : {"password", "secret", "passphrase"}) {
    if (key.find(secret) != std::string_view::npos) return true;
  }
  return key == "ssl.key.pem" || key == "sasl.oauthbearer.config";
}

Status RefuseSecretsOnCommandLine(const std::vector<std::string>& args) {
  // --kafka takes several values after one flag, so every argument that reads key=value is checked.
  for (std::string_view arg : args) {
    if (arg.rfind("--kafka=", 0) == 0) arg.remove_prefix(8);
    size_t eq = arg.find('=');
    if (eq == std::string_view::npos || arg.rfind("-", 0) == 0) continue;
    std::string key(arg.substr(0, eq));
    if (!IsSecretKafkaProperty(key)) continue;
    return Status::Invalid("--kafka " + key + "=...: secrets are not accepted on the command line, where other "
                           "users of the machine can read them (ps); put the property in a --config file and the "
                           "secret in the environment: \"kafka: {" + key + ": ${KAFKA_SECRET}}\" (docs/operations.md)");
  }
  return Status::OK();
}

void AddMetricsOptions(CLI::App* cmd, MetricsFlags& flags) {
  cmd->add_option("--metrics-port", flags.port,
                  "Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: any free port, logged; "
                  "default: no endpoint)");
  cmd->add_option("--metrics-host", flags.host,
                  "Address the metrics endpoint listens on (it has no authentication: 0.0.0.0 serves every host)")
      ->capture_default_str();
}

Result<std::unique_ptr<MetricsServer>> StartMetricsServer(const MetricsFlags& flags, const MetricsRegistry& registry) {
  if (flags.port == -1) return std::unique_ptr<MetricsServer>();
  M2M_ASSIGN_OR_RETURN(auto server, MetricsServer::Start(registry, {.host = flags.host, .port = flags.port}));
  spdlog::info("metrics at http://{}:{}/metrics", flags.host, server->port());
  return server;
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
