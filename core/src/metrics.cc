#include "m2m/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace m2m {
namespace {

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) snprintf(buf, sizeof buf, "%.0f", v);
  else snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string LabelSet(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    out += (i ? "," : "") + labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
  }
  return out + "}";
}

// HELP text escapes only backslash and newline.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// VmRSS of /proc/self/status in bytes, 0 when unreadable.
double ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024;  // "VmRSS:  1234 kB"
  }
  return 0;
}

using Clock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events` or `deadline` passes (false).
bool WaitReady(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// Sends `data` unless the client stops taking it before `deadline`.
void SendAll(int fd, const std::string& data, Clock::time_point deadline) {
  for (size_t sent = 0; sent < data.size();) {
    if (!WaitReady(fd, POLLOUT, deadline)) return;
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

void CounterVec::Add(const std::string& label_value, int64_t by) {
  std::lock_guard lock(mu_);
  values_[label_value] += by;
}

std::map<std::string, int64_t> CounterVec::Values() const {
  std::lock_guard lock(mu_);
  return values_;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void MetricsRegistry::Add(std::string name, MetricType type, std::string help, std::function<double()> read) {
  families_.push_back({std::move(name), std::move(help), type, std::move(read), "", nullptr});
}

void MetricsRegistry::AddVec(std::string name, MetricType type, std::string help, std::string label,
                             const CounterVec* vec) {
  families_.push_back({std::move(name), std::move(help), type, nullptr, std::move(label), vec});
}

std::string MetricsRegistry::Render() const {
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + (f.type == MetricType::kCounter ? " counter\n" : " gauge\n");
    if (f.vec == nullptr) {
      out += f.name + LabelSet(common_) + " " + FormatValue(f.read()) + "\n";
      continue;
    }
    for (const auto& [value, count] : f.vec->Values()) {
      MetricLabels labels = common_;
      labels.emplace_back(f.label, value);
      out += f.name + LabelSet(labels) + " " + FormatValue(static_cast<double>(count)) + "\n";
    }
  }
  return out;
}

void AddProcessMetrics(MetricsRegistry& registry) {
  double started = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  registry.Add("process_resident_memory_bytes", MetricType::kGauge, "Resident memory size in bytes.", ResidentBytes);
  registry.Add("process_start_time_seconds", MetricType::kGauge, "Start time of the process since the Unix epoch.",
               [started] { return std::floor(started); });
}

Status MetricsServerOptions::Validate() const {
  if (port < 0 || port > 65535) return Status::Invalid("metrics port must be in 0..65535");
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return Status::Invalid("metrics host must be an IPv4 address: " + host);
  return Status::OK();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsRegistry& registry,
                                                           MetricsServerOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("metrics socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 16) != 0) {
    Status st = Status::IoError("cannot serve metrics on " + options.host + ":" + std::to_string(options.port) + ": " +
                                strerror(errno));
    close(fd);
    return st;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::unique_ptr<MetricsServer>(new MetricsServer(registry, fd, ntohs(addr.sin_port)));
}

MetricsServer::MetricsServer(const MetricsRegistry& registry, int fd, int port)
    : registry_(registry), fd_(fd), port_(port), thread_([this] { Serve(); }) {}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void MetricsServer::Serve() {
  while (!stop_.load()) {
    pollfd listening{fd_, POLLIN, 0};
    if (poll(&listening, 1, 200) <= 0) continue;  // wakes up to notice stop_
    int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const auto deadline = Clock::now() + kClientTimeout;
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      if (!WaitReady(client, POLLIN, deadline)) break;
      ssize_t n = recv(client, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string line = request.substr(0, request.find("\r\n"));
    bool metrics = line.rfind("GET /metrics ", 0) == 0 || line.rfind("GET /metrics?", 0) == 0;
    std::string body = metrics ? registry_.Render() : "Not found: metrics are at /metrics\n";
    // The answer gets a deadline of its own: one counted from the accept would run out while a large
    // registry renders slowly (seconds, under a sanitizer), and then no client would ever get one.
    SendAll(client, std::string(metrics ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
                        (metrics ? "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                 : "Content-Type: text/plain; charset=utf-8\r\n") +
                        "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body,
            Clock::now() + kClientTimeout);
    close(client);
  }
}

}  // namespace m2m
