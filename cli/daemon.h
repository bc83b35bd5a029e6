// What the long-running subcommands (capture, apply) share: librdkafka properties from --kafka
// key=value, and stopping cleanly on SIGINT or SIGTERM, even when the signal comes during start-up.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "m2m/kafka_client.h"
#include "m2m/status.h"

namespace m2m::cli {

// Adds each "key=value" of `props` to `config`; anything else is an error naming it.
Status AddKafkaProperties(const std::vector<std::string>& props, KafkaConfig& config);

// From now on SIGINT and SIGTERM ask the running daemon to stop (or stop it as soon as it runs).
void InstallStopSignals();

namespace detail {
using StopFn = void (*)(void*);
void SetStopTarget(void* daemon, StopFn stop);
}  // namespace detail

// Makes the daemon (with InstallStopSignals already called), runs it until it returns, and returns
// its Status. `Daemon` has Run() and RequestStop() (callable from a signal handler).
template <typename Daemon>
Status RunDaemon(Result<std::unique_ptr<Daemon>> made) {
  if (!made.ok()) return made.status();
  std::unique_ptr<Daemon> daemon = std::move(made).value();
  detail::SetStopTarget(daemon.get(), [](void* d) { static_cast<Daemon*>(d)->RequestStop(); });
  Status st = daemon->Run();
  detail::SetStopTarget(nullptr, nullptr);
  return st;
}

}  // namespace m2m::cli
