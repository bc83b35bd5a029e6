// The status page's short memory (status_page.h): the pipeline statuses sampled over the last
// minutes, for its charts of lag, throughput and latency per collection.
//
// A PipelineStatus read without an interval has no throughput; the history gives it one from the
// sample before: the collection's applied events since then over the time between the two. A count
// that went down (apply's group reset, its tables dropped) gives no rate rather than a negative one.
//
// Thread safety: none; the page guards it with its own lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline_status.h"

namespace m2m::status {

class StatusHistory {
 public:
  // Keeps the samples of the last `span` (by their at_ms, against the newest).
  explicit StatusHistory(std::chrono::milliseconds span) : span_ms_(span.count()) {}

  // Adds a sample; sets each collection's applied_per_s from the previous sample when the status
  // has none of its own.
  void Add(PipelineStatus status);

  // The newest sample; none before the first.
  const std::optional<PipelineStatus>& latest() const { return latest_; }
  size_t size() const { return points_.size(); }

  // {"at_ms": [t...], "collections": {topic: {"collection", "lag_events": [...],
  //  "lag_seconds": [...], "applied_per_s": [...]}}}: one value per time, null where the collection
  // was not reported or had no rate.
  nlohmann::json ToJson() const;

 private:
  struct Point {
    int64_t lag_events = 0;
    double lag_seconds = 0;
    std::optional<double> applied_per_s;
  };
  struct Sample {
    int64_t at_ms = 0;
    std::map<std::string, Point> by_topic;
  };
  int64_t span_ms_;
  std::deque<Sample> points_;
  std::map<std::string, std::string> collection_of_;  // topic -> "db.coll", of every topic seen
  std::optional<PipelineStatus> latest_;
};

}  // namespace m2m::status
