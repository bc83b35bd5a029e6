#include "m2m/metrics.h"

#include <prometheus/text_serializer.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>

namespace m2m {
namespace {

// VmRSS of /proc/self/status in bytes, 0 when unreadable.
double ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024;  // "VmRSS:  1234 kB"
  }
  return 0;
}

// prometheus-cpp 1.0.1 writes HELP text as given; the format wants backslash and newline escaped.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

prometheus::ClientMetric Sample(const MetricLabels& common, MetricType type, double value) {
  prometheus::ClientMetric m;
  for (const auto& [name, label_value] : common) m.label.push_back({name, label_value});
  if (type == MetricType::kCounter) m.counter.value = value;
  else m.gauge.value = value;
  return m;
}

}  // namespace

void LabelledValues::Add(const Key& labels, int64_t by) {
  std::lock_guard lock(mu_);
  values_[labels] += by;
}

void LabelledValues::Replace(std::map<Key, int64_t> values) {
  std::lock_guard lock(mu_);
  values_ = std::move(values);
}

std::map<LabelledValues::Key, int64_t> LabelledValues::Values() const {
  std::lock_guard lock(mu_);
  return values_;
}

void MetricsRegistry::Add(std::string name, MetricType type, std::string help, std::function<double()> read) {
  families_.push_back({std::move(name), std::move(help), type, std::move(read), {}, nullptr, nullptr});
}

void MetricsRegistry::AddVec(std::string name, MetricType type, std::string help, std::vector<std::string> labels,
                             const LabelledValues* values) {
  families_.push_back({std::move(name), std::move(help), type, nullptr, std::move(labels), values, nullptr});
}

void MetricsRegistry::AddHistogram(std::string name, std::string help, const prometheus::Histogram* histogram) {
  families_.push_back({std::move(name), std::move(help), MetricType::kGauge, nullptr, {}, nullptr, histogram});
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (const Family& f : families_) {
    prometheus::MetricFamily& family = out.emplace_back();
    family.name = f.name;
    family.help = EscapeHelp(f.help);
    if (f.histogram) {
      family.type = prometheus::MetricType::Histogram;
      prometheus::ClientMetric m = f.histogram->Collect();
      for (const auto& [name, value] : common_) m.label.push_back({name, value});
      family.metric.push_back(std::move(m));
      continue;
    }
    family.type = f.type == MetricType::kCounter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
    if (!f.values) {
      family.metric.push_back(Sample(common_, f.type, f.read()));
      continue;
    }
    for (const auto& [key, value] : f.values->Values()) {
      prometheus::ClientMetric& m = family.metric.emplace_back(Sample(common_, f.type, static_cast<double>(value)));
      for (size_t i = 0; i < f.labels.size() && i < key.size(); ++i) m.label.push_back({f.labels[i], key[i]});
    }
  }
  return out;
}

std::string MetricsRegistry::Render() const { return prometheus::TextSerializer().Serialize(Collect()); }

void AddProcessMetrics(MetricsRegistry& registry) {
  double started = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  registry.Add("process_resident_memory_bytes", MetricType::kGauge, "Resident memory size in bytes.", ResidentBytes);
  registry.Add("process_start_time_seconds", MetricType::kGauge, "Start time of the process since the Unix epoch.",
               [started] { return std::floor(started); });
}

}  // namespace m2m
