#include "daemon.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>

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

// STATUS= is one line of the notification; a multi-line error would end it early.
std::string StatusAssignment(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return "STATUS=" + text;
}

void Notify(const std::string& state) {
  int sent = sd_notify(0, state.c_str());
  if (sent < 0) spdlog::debug("sd_notify({}): {}", state, std::strerror(-sent));
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

void AddMetricsOptions(CLI::App* cmd, Command command, MetricsFlags& flags) {
  AddSetting(cmd, command, "metrics-port", flags.port);
  AddSetting(cmd, command, "metrics-host", flags.host);
}

void AddLogOptions(CLI::App* cmd, Command command, LogFlags& flags) {
  AddSetting(cmd, command, "log-format", flags.format);
  AddSetting(cmd, command, "log-level", flags.level);
}

Status StartLogging(const LogFlags& flags, LogFields fields, bool to_stderr) {
  M2M_ASSIGN_OR_RETURN(LogFormat format, ParseLogFormat(flags.format));
  return ConfigureLogging({.format = format, .level = flags.level, .to_stderr = to_stderr, .fields = std::move(fields)});
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

ServiceNotifier::ServiceNotifier(std::function<bool()> ready, std::function<std::string()> status)
    : ready_(std::move(ready)), status_(std::move(status)) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') {
    finished_ = true;
    return;
  }
  Notify(StatusAssignment("starting: connecting to the servers"));
  thread_ = std::thread([this] { Loop(); });
}

ServiceNotifier::~ServiceNotifier() { Finish(Status::OK()); }

void ServiceNotifier::Loop() {
  using Clock = std::chrono::steady_clock;
  constexpr auto kTick = std::chrono::milliseconds(200);
  constexpr auto kStatusEvery = std::chrono::seconds(5);
  uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  auto next_ping = Clock::now();
  auto next_status = Clock::now();
  bool ready_sent = false;
  std::string last_status;
  std::unique_lock lock(mu_);
  while (!done_) {
    auto now = Clock::now();
    if (!stopping_sent_ && g_stop.load()) {
      Notify("STOPPING=1\n" + StatusAssignment("stopping"));
      stopping_sent_ = true;
    } else if (!stopping_sent_ && (ready_sent ? now >= next_status : ready_())) {
      std::string line = status_();
      if (!ready_sent || line != last_status) Notify((ready_sent ? "" : "READY=1\n") + StatusAssignment(line));
      ready_sent = true;
      last_status = std::move(line);
      next_status = now + kStatusEvery;
    }
    // The ping says the process is alive and scheduled (a stopped or frozen process misses it); a
    // server that hangs the daemon's loop is bounded by its own timeouts and --retry-for instead.
    if (watchdog && now >= next_ping) {
      Notify("WATCHDOG=1");
      next_ping = now + std::chrono::microseconds(watchdog_usec / 2);
    }
    wake_.wait_for(lock, kTick);
  }
}

void ServiceNotifier::Finish(const Status& outcome) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = done_ = true;
  }
  wake_.notify_all();
  thread_.join();
  Notify((stopping_sent_ ? "" : "STOPPING=1\n") +
         StatusAssignment(outcome.ok() ? "stopped" : "exiting: " + outcome.ToString()));
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
