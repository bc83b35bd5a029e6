// The status page's pure parts: the history behind its charts and the rules a retry must pass.
#include <gtest/gtest.h>

#include "status_history.h"
#include "status_page.h"

namespace m2m::status {
namespace {

using json = nlohmann::json;

PipelineStatus At(int64_t ms, std::vector<std::pair<std::string, int64_t>> applied) {
  PipelineStatus s;
  s.at_ms = ms;
  for (const auto& [topic, n] : applied) {
    CollectionProgress c;
    c.topic = topic;
    c.collection = topic.substr(topic.find('.') + 1);
    c.applied_events = n;
    c.lag_events = 100 - n;
    c.lag_seconds = 0.5;
    s.collections.push_back(c);
  }
  return s;
}

TEST(StatusHistory, RatesComeFromTheSampleBefore) {
  StatusHistory h(std::chrono::minutes(1));
  h.Add(At(1000, {{"m.db.a", 10}}));
  EXPECT_FALSE(h.latest()->collections[0].applied_per_s);  // one sample: no rate yet
  h.Add(At(3000, {{"m.db.a", 50}}));
  EXPECT_DOUBLE_EQ(*h.latest()->collections[0].applied_per_s, 20);  // 40 events in 2 s
  json j = h.ToJson();
  EXPECT_EQ(j["at_ms"], json({1000, 3000}));
  EXPECT_EQ(j["collections"]["m.db.a"]["collection"], "db.a");
  EXPECT_EQ(j["collections"]["m.db.a"]["applied_per_s"], json({nullptr, 20.0}));
  EXPECT_EQ(j["collections"]["m.db.a"]["lag_events"], json({90, 50}));
  EXPECT_EQ(j["collections"]["m.db.a"]["lag_seconds"], json({0.5, 0.5}));
}

TEST(StatusHistory, ACountThatWentDownGivesNoRate) {
  StatusHistory h(std::chrono::minutes(1));
  h.Add(At(1000, {{"m.db.a", 50}}));
  h.Add(At(2000, {{"m.db.a", 5}}));  // the group's offsets were reset
  EXPECT_FALSE(h.latest()->collections[0].applied_per_s);
}

TEST(StatusHistory, ARateOfItsOwnIsKept) {
  StatusHistory h(std::chrono::minutes(1));
  h.Add(At(1000, {{"m.db.a", 10}}));
  PipelineStatus s = At(2000, {{"m.db.a", 20}});
  s.collections[0].applied_per_s = 3;
  h.Add(s);
  EXPECT_DOUBLE_EQ(*h.latest()->collections[0].applied_per_s, 3);
}

TEST(StatusHistory, KeepsTheSpanAndPadsCollectionsThatCameLater) {
  StatusHistory h(std::chrono::seconds(10));
  h.Add(At(0, {{"m.db.a", 1}}));
  h.Add(At(5000, {{"m.db.a", 2}}));
  h.Add(At(12000, {{"m.db.a", 3}, {"m.db.b", 7}}));
  EXPECT_EQ(h.size(), 2u);  // the sample at 0 is over 10 s older than the newest
  json j = h.ToJson();
  EXPECT_EQ(j["at_ms"], json({5000, 12000}));
  EXPECT_EQ(j["collections"]["m.db.b"]["lag_events"], json({nullptr, 93}));
  h.Add(At(30000, {{"m.db.b", 8}}));
  h.Add(At(31000, {{"m.db.b", 9}}));
  EXPECT_FALSE(h.ToJson()["collections"].contains("m.db.a"));  // gone from every sample kept
}

RetryRequest Good() {
  return {.mongo_given = true, .remote_addr = "127.0.0.1", .host = "127.0.0.1:9189",
          .origin = "http://127.0.0.1:9189", .token = "t0k", .expected_token = "t0k"};
}

TEST(RetryRefusal, AcceptsTheOwnPageFromThisMachine) {
  EXPECT_EQ(RetryRefusal(Good()), "");
  RetryRequest r = Good();
  r.origin = nullptr;  // same-origin fetches may leave it out
  r.host = "localhost:9189";
  r.remote_addr = "::1";
  EXPECT_EQ(RetryRefusal(r), "");
  r.host = "[::1]:9189";
  EXPECT_EQ(RetryRefusal(r), "");
}

TEST(RetryRefusal, SaysWhyNot) {
  auto refused = [](auto change) {
    RetryRequest r = Good();
    change(r);
    return RetryRefusal(r);
  };
  EXPECT_NE(refused([](RetryRequest& r) { r.mongo_given = false; }).find("--mongo-uri"), std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.remote_addr = "10.0.0.7"; }).find("from this machine only"),
            std::string::npos);
  // DNS rebinding: a site's own name pointed at 127.0.0.1.
  EXPECT_NE(refused([](RetryRequest& r) { r.host = "evil.example:9189"; r.origin = "http://evil.example:9189"; })
                .find("not by the name 'evil.example:9189'"),
            std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.host = nullptr; }).find("(none)"), std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.origin = "http://evil.example"; }).find("another site"), std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.origin = "null"; }).find("another site"), std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.token = nullptr; }).find("token"), std::string::npos);
  EXPECT_NE(refused([](RetryRequest& r) { r.token = "guess"; }).find("token"), std::string::npos);
}

}  // namespace
}  // namespace m2m::status
