// The /metrics endpoint: prometheus-cpp's Exposer (civetweb) serving a MetricsRegistry.
#include <arpa/inet.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <exception>

#include "m2m/metrics.h"

namespace m2m {
namespace {

// What the Exposer holds (by weak_ptr): the registry, collected at each scrape.
class RegistryCollectable : public prometheus::Collectable {
 public:
  explicit RegistryCollectable(const MetricsRegistry& registry) : registry_(registry) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return registry_.Collect(); }

 private:
  const MetricsRegistry& registry_;
};

}  // namespace

struct MetricsServer::Impl {
  std::shared_ptr<RegistryCollectable> collectable;
  std::unique_ptr<prometheus::Exposer> exposer;  // declared last: its threads stop before `collectable` goes
};

Status MetricsServerOptions::Validate() const {
  if (port < 0 || port > 65535) return Status::Invalid("metrics port must be in 0..65535");
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return Status::Invalid("metrics host must be an IPv4 address: " + host);
  if (threads < 1) return Status::Invalid("metrics threads must be at least 1");
  if (request_timeout.count() < 1) return Status::Invalid("metrics request timeout must be positive");
  return Status::OK();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsRegistry& registry,
                                                           MetricsServerOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  const std::string address = options.host + ":" + std::to_string(options.port);
  auto impl = std::make_unique<Impl>();
  impl->collectable = std::make_shared<RegistryCollectable>(registry);
  try {
    // civetweb's options. Its request timeout bounds both reading a request and sending the answer;
    // without keep-alive a connection ends with its answer.
    impl->exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", address,
        "num_threads", std::to_string(options.threads),
        "request_timeout_ms", std::to_string(options.request_timeout.count()),
        "enable_keep_alive", "no",
    });
  } catch (const std::exception& e) {
    // civetweb says only that it could not start ("null context ..."): listening is what fails in practice.
    return Status::IoError("cannot serve metrics on " + address +
                           ": cannot listen there (the port in use, or not an address of this host); civetweb: " +
                           e.what());
  }
  impl->exposer->RegisterCollectable(impl->collectable);
  std::vector<int> ports = impl->exposer->GetListeningPorts();
  if (ports.empty()) return Status::IoError("cannot serve metrics on " + address + ": no port is listening");
  int port = ports.front();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl), port));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl, int port) : impl_(std::move(impl)), port_(port) {}

MetricsServer::~MetricsServer() = default;

}  // namespace m2m
