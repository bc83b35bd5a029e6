#include "m2m/backoff.h"

#include <gtest/gtest.h>

namespace m2m {
namespace {

TEST(BackoffTest, DoublesFromHalfASecondUpToThirtyAndStartsOverAfterReset) {
  Backoff b;
  std::atomic<bool> stop{true};  // a stop request cuts every wait short
  std::vector<long> pauses;
  for (int i = 0; i < 9; ++i) {
    pauses.push_back(static_cast<long>(b.next().count()));
    b.Wait(stop);
  }
  EXPECT_EQ(pauses, (std::vector<long>{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}));
  b.Reset();
  EXPECT_EQ(b.next().count(), 500);
}

TEST(BackoffTest, WaitsTheWholePauseUnlessStopped) {
  Backoff b;
  std::atomic<bool> stop{false};
  auto start = std::chrono::steady_clock::now();
  b.Wait(stop);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

}  // namespace
}  // namespace m2m
