#include "status_history.h"

namespace m2m::status {

void StatusHistory::Add(PipelineStatus status) {
  std::map<std::string, int64_t> applied_before;
  double seconds = 0;
  if (latest_) {
    for (const CollectionProgress& c : latest_->collections) applied_before[c.topic] = c.applied_events;
    seconds = static_cast<double>(status.at_ms - latest_->at_ms) / 1000;
  }
  Sample sample{status.at_ms, {}};
  for (CollectionProgress& c : status.collections) {
    auto before = applied_before.find(c.topic);
    if (!c.applied_per_s && before != applied_before.end() && seconds > 0 && c.applied_events >= before->second) {
      c.applied_per_s = static_cast<double>(c.applied_events - before->second) / seconds;
    }
    sample.by_topic[c.topic] = Point{c.lag_events, c.lag_seconds, c.applied_per_s};
    collection_of_[c.topic] = c.collection;
  }
  points_.push_back(std::move(sample));
  while (points_.front().at_ms < points_.back().at_ms - span_ms_) points_.pop_front();
  latest_ = std::move(status);
}

nlohmann::json StatusHistory::ToJson() const {
  using json = nlohmann::json;
  json at = json::array();
  std::map<std::string, json> series;
  for (const auto& [topic, collection] : collection_of_) {
    series[topic] = {{"collection", collection}, {"lag_events", json::array()}, {"lag_seconds", json::array()},
                     {"applied_per_s", json::array()}};
  }
  for (const Sample& s : points_) {
    at.push_back(s.at_ms);
    for (auto& [topic, out] : series) {
      auto p = s.by_topic.find(topic);
      bool has = p != s.by_topic.end();
      out["lag_events"].push_back(has ? json(p->second.lag_events) : json(nullptr));
      out["lag_seconds"].push_back(has ? json(p->second.lag_seconds) : json(nullptr));
      out["applied_per_s"].push_back(has && p->second.applied_per_s ? json(*p->second.applied_per_s) : json(nullptr));
    }
  }
  json collections = json::object();
  for (auto& [topic, out] : series) {
    // A topic gone from every sample kept (deleted, or the prefix's topics changed) leaves the charts.
    bool seen = false;
    for (const Sample& s : points_) seen = seen || s.by_topic.count(topic) > 0;
    if (seen) collections[topic] = std::move(out);
  }
  return {{"at_ms", at}, {"collections", collections}};
}

}  // namespace m2m::status
