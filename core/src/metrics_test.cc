#include "m2m/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

namespace m2m {
namespace {

TEST(MetricsTest, RendersTheTextExpositionFormat) {
  MetricsRegistry registry(MetricLabels{{"capture", "shop"}});
  std::atomic<int64_t> events{42};
  CounterVec by_collection;
  by_collection.Add("shop.orders", 3);
  by_collection.Add("shop.\"odd\"\\name");
  by_collection.Add("shop.orders");
  registry.Add("m2m_capture_events_total", MetricType::kCounter, "Events published.",
               [&] { return static_cast<double>(events.load()); });
  registry.Add("m2m_capture_lag_seconds", MetricType::kGauge, "Lag.\nSecond line \\ here", [] { return 1.5; });
  registry.AddVec("m2m_capture_collection_events_total", MetricType::kCounter, "Per collection.", "collection",
                  &by_collection);
  EXPECT_EQ(registry.Render(),
            "# HELP m2m_capture_events_total Events published.\n"
            "# TYPE m2m_capture_events_total counter\n"
            "m2m_capture_events_total{capture=\"shop\"} 42\n"
            "# HELP m2m_capture_lag_seconds Lag.\\nSecond line \\\\ here\n"
            "# TYPE m2m_capture_lag_seconds gauge\n"
            "m2m_capture_lag_seconds{capture=\"shop\"} 1.5\n"
            "# HELP m2m_capture_collection_events_total Per collection.\n"
            "# TYPE m2m_capture_collection_events_total counter\n"
            "m2m_capture_collection_events_total{capture=\"shop\",collection=\"shop.\\\"odd\\\"\\\\name\"} 1\n"
            "m2m_capture_collection_events_total{capture=\"shop\",collection=\"shop.orders\"} 4\n");
}

TEST(MetricsTest, NoCommonLabelsMeansNoBraces) {
  MetricsRegistry registry;
  registry.Add("up", MetricType::kGauge, "Up.", [] { return 1e20; });
  EXPECT_EQ(registry.Render(), "# HELP up Up.\n# TYPE up gauge\nup 1e+20\n");
}

TEST(MetricsTest, ProcessMemoryIsRead) {
  MetricsRegistry registry;
  AddProcessMetrics(registry);
  std::string text = registry.Render();
  auto at = text.find("\nprocess_resident_memory_bytes ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GT(std::stod(text.substr(at + 31)), 1024 * 1024);
}

std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  send(fd, request.data(), request.size(), 0);
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response;
}

TEST(MetricsTest, ServesMetricsOverHttp) {
  MetricsRegistry registry;
  std::atomic<int64_t> n{7};
  registry.Add("m2m_test_total", MetricType::kCounter, "Test.", [&] { return static_cast<double>(n.load()); });
  auto server = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::string response = Get((*server)->port(), "/metrics");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(response.find("\r\n\r\n# HELP m2m_test_total Test.\n"), std::string::npos) << response;
  n = 8;
  EXPECT_NE(Get((*server)->port(), "/metrics").find("m2m_test_total 8\n"), std::string::npos);
  EXPECT_EQ(Get((*server)->port(), "/").rfind("HTTP/1.1 404", 0), 0u);
}

TEST(MetricsTest, APortInUseIsAnError) {
  MetricsRegistry registry;
  auto first = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.ok());
  auto second = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = (*first)->port()});
  EXPECT_FALSE(second.ok());
  EXPECT_FALSE(MetricsServer::Start(registry, {.host = "localhost", .port = 0}).ok());
}

TEST(MetricsTest, ListensOnLoopbackUnlessToldOtherwise) {
  // No authentication: serving other hosts must be asked for (--metrics-host).
  EXPECT_EQ(MetricsServerOptions{}.host, "127.0.0.1");
  MetricsRegistry registry;
  auto server = MetricsServer::Start(registry, {.port = 0});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ(Get((*server)->port(), "/metrics").rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(MetricsTest, AClientThatStopsReadingDoesNotHoldUpTheNextScrape) {
  // An answer far larger than the socket buffers, to a client that asks and then reads nothing: the
  // server's send blocks until it gives that client up.
  MetricsRegistry registry;
  CounterVec many;
  for (int i = 0; i < 400000; ++i) many.Add("a-label-value-long-enough-to-fill-buffers-" + std::to_string(i));
  registry.AddVec("m2m_test_total", MetricType::kCounter, "Test.", "label", &many);
  // The server renders this answer twice before the second client has it (once for each client), which
  // takes seconds under a sanitizer on a loaded machine: the bounds below allow for it, as measured.
  auto render_started = std::chrono::steady_clock::now();
  (void)registry.Render();
  double rendering = std::chrono::duration<double>(std::chrono::steady_clock::now() - render_started).count();
  double bound = std::chrono::duration<double>(MetricsServer::kClientTimeout).count() + 3 * rendering + 15;
  auto server = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);

  int stalled = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(stalled, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_EQ(connect(stalled, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(stalled, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));

  auto start = std::chrono::steady_clock::now();
  int next = socket(AF_INET, SOCK_STREAM, 0);
  // Without a send timeout the server would never come to this client.
  timeval wait{static_cast<time_t>(bound) + 5, 0};
  setsockopt(next, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  ASSERT_EQ(connect(next, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(send(next, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[65536];
  for (ssize_t n; (n = recv(next, buf, sizeof buf, 0)) > 0;) response.append(buf, static_cast<size_t>(n));
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(next);
  close(stalled);
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response.substr(0, 200);
  EXPECT_NE(response.find("-399999\"} 1\n"), std::string::npos);  // the whole answer
  EXPECT_LT(waited, bound) << "one rendering took " << rendering << " s";
}

}  // namespace
}  // namespace m2m
