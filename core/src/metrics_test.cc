#include "m2m/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

namespace m2m {
namespace {

TEST(MetricsTest, RendersTheTextExpositionFormat) {
  MetricsRegistry registry(MetricLabels{{"capture", "shop"}});
  std::atomic<int64_t> events{42};
  LabelledValues by_collection;
  by_collection.Add({"shop.orders"}, 3);
  by_collection.Add({"shop.\"odd\"\\name"});
  by_collection.Add({"shop.orders"});
  registry.Add("m2m_capture_events_total", MetricType::kCounter, "Events published.",
               [&] { return static_cast<double>(events.load()); });
  registry.Add("m2m_capture_lag_seconds", MetricType::kGauge, "Lag.\nSecond line \\ here", [] { return 1.5; });
  registry.AddVec("m2m_capture_collection_events_total", MetricType::kCounter, "Per collection.", {"collection"},
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

TEST(MetricsTest, LabelledValuesTakeSeveralLabelsAndCanBeReplacedWhole) {
  MetricsRegistry registry(MetricLabels{{"group", "g"}});
  LabelledValues lag;
  lag.Add({"t", "0"}, 5);
  lag.Replace({{{"t", "1"}, 0}, {{"u", "0"}, 7}});  // partition t/0 is no longer owned: it goes
  registry.AddVec("m2m_apply_partition_lag_events", MetricType::kGauge, "Lag.", {"topic", "partition"}, &lag);
  EXPECT_EQ(registry.Render(),
            "# HELP m2m_apply_partition_lag_events Lag.\n"
            "# TYPE m2m_apply_partition_lag_events gauge\n"
            "m2m_apply_partition_lag_events{group=\"g\",topic=\"t\",partition=\"1\"} 0\n"
            "m2m_apply_partition_lag_events{group=\"g\",topic=\"u\",partition=\"0\"} 7\n");
}

TEST(MetricsTest, RendersHistogramsWithCumulativeBuckets) {
  MetricsRegistry registry(MetricLabels{{"group", "g"}});
  prometheus::Histogram age{{0.1, 1, 10}};
  age.Observe(0.05);
  age.Observe(0.5);
  age.Observe(0.7);
  age.Observe(100);
  registry.AddHistogram("m2m_apply_event_age_seconds", "Age.", &age);
  EXPECT_EQ(registry.Render(),
            "# HELP m2m_apply_event_age_seconds Age.\n"
            "# TYPE m2m_apply_event_age_seconds histogram\n"
            "m2m_apply_event_age_seconds_count{group=\"g\"} 4\n"
            "m2m_apply_event_age_seconds_sum{group=\"g\"} 101.25\n"
            "m2m_apply_event_age_seconds_bucket{group=\"g\",le=\"0.1\"} 1\n"
            "m2m_apply_event_age_seconds_bucket{group=\"g\",le=\"1\"} 3\n"
            "m2m_apply_event_age_seconds_bucket{group=\"g\",le=\"10\"} 3\n"
            "m2m_apply_event_age_seconds_bucket{group=\"g\",le=\"+Inf\"} 4\n");
}

TEST(MetricsTest, NoCommonLabelsMeansNoBracesAndNaNIsKept) {
  MetricsRegistry registry;
  registry.Add("up", MetricType::kGauge, "Up.", [] { return 1e20; });
  registry.Add("unknown", MetricType::kGauge, "Unknown.", [] { return std::numeric_limits<double>::quiet_NaN(); });
  std::string text = registry.Render();
  EXPECT_NE(text.find("\nup 1e+20\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nunknown Nan\n"), std::string::npos) << text;  // Prometheus parses any case of NaN
}

TEST(MetricsTest, BucketBoundsSpanARealTimePipeline) {
  EXPECT_TRUE(std::is_sorted(kSecondsBuckets.begin(), kSecondsBuckets.end()));
  EXPECT_LE(kSecondsBuckets.front(), 0.005);
  EXPECT_GE(kSecondsBuckets.back(), 60);
  EXPECT_TRUE(std::is_sorted(kBatchEventsBuckets.begin(), kBatchEventsBuckets.end()));
  EXPECT_EQ(kBatchEventsBuckets.front(), 1);
  EXPECT_GE(kBatchEventsBuckets.back(), 5000);  // apply's default --max-batch-events
}

TEST(MetricsTest, ProcessMemoryIsRead) {
  MetricsRegistry registry;
  AddProcessMetrics(registry);
  std::string text = registry.Render();
  auto at = text.find("\nprocess_resident_memory_bytes ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GT(std::stod(text.substr(at + 31)), 1024 * 1024);
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  return addr;
}

std::string Get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Loopback(port);
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
  EXPECT_NE(response.find("Content-Type: text/plain"), std::string::npos) << response;
  EXPECT_NE(response.find("\n# HELP m2m_test_total Test.\n# TYPE m2m_test_total counter\nm2m_test_total 7\n"),
            std::string::npos)
      << response;
  EXPECT_NE(response.find("\nexposer_scrapes_total "), std::string::npos) << response;  // prometheus-cpp's own
  n = 8;
  EXPECT_NE(Get((*server)->port(), "/metrics").find("m2m_test_total 8\n"), std::string::npos);
  EXPECT_EQ(Get((*server)->port(), "/").rfind("HTTP/1.1 404", 0), 0u);
}

TEST(MetricsTest, APortInUseOrBadOptionsAreErrors) {
  MetricsRegistry registry;
  auto first = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.ok());
  auto second = MetricsServer::Start(registry, {.host = "127.0.0.1", .port = (*first)->port()});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot serve metrics on 127.0.0.1:" + std::to_string((*first)->port())),
            std::string::npos)
      << second.status().ToString();
  EXPECT_FALSE(MetricsServer::Start(registry, {.host = "localhost", .port = 0}).ok());
  EXPECT_FALSE(MetricsServer::Start(registry, {.port = 70000}).ok());
  EXPECT_FALSE(MetricsServer::Start(registry, {.port = 0, .threads = 0}).ok());
  EXPECT_FALSE(MetricsServer::Start(registry, {.port = 0, .request_timeout = std::chrono::milliseconds(0)}).ok());
}

TEST(MetricsTest, ListensOnLoopbackUnlessToldOtherwise) {
  // No authentication: serving other hosts must be asked for (--metrics-host).
  EXPECT_EQ(MetricsServerOptions{}.host, "127.0.0.1");
  MetricsRegistry registry;
  auto server = MetricsServer::Start(registry, {.port = 0});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ(Get((*server)->port(), "/metrics").rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(MetricsTest, StalledClientsDoNotHoldUpTheNextScrape) {
  // More stalled clients than the server has threads: two that send half a request, two that ask
  // for an answer far larger than the socket buffers and read none of it. Each is dropped after the
  // request timeout, so a scrape after them is answered.
  MetricsRegistry registry;
  LabelledValues many;
  for (int i = 0; i < 100000; ++i) many.Add({"a-label-value-long-enough-to-fill-buffers-" + std::to_string(i)});
  registry.AddVec("m2m_test_total", MetricType::kCounter, "Test.", {"label"}, &many);
  // The server renders the answer three times before the scrape has it, which takes seconds under a
  // sanitizer on a loaded machine: the bound below allows for it.
  auto render_started = std::chrono::steady_clock::now();
  (void)registry.Render();
  double rendering = std::chrono::duration<double>(std::chrono::steady_clock::now() - render_started).count();
  MetricsServerOptions options{.port = 0, .threads = 2, .request_timeout = std::chrono::milliseconds(500)};
  auto server = MetricsServer::Start(registry, options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  sockaddr_in addr = Loopback((*server)->port());
  std::vector<int> stalled;
  for (std::string request : {"GET /metr", "GET /metr", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                              "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    stalled.push_back(fd);
  }
  auto start = std::chrono::steady_clock::now();
  std::string response = Get((*server)->port(), "/metrics");
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int fd : stalled) close(fd);
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response.substr(0, 200);
  EXPECT_NE(response.find("-99999\"} 1\n"), std::string::npos);  // the whole answer
  // Two rounds of two stalled clients, 0.5 s each, the renderings, and room for a loaded machine.
  EXPECT_LT(waited, 3 * rendering + 10) << "one rendering took " << rendering << " s";
}

}  // namespace
}  // namespace m2m
