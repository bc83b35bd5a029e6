// The pause between attempts while a server is unreachable or restarting: 0.5 s, doubling up to 30 s,
// cut short by a stop request. Short enough to notice a quick restart at once, long enough not to
// hammer a server that is starting up.
//
// Thread safety: one thread uses a Backoff; the stop flag may be set from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace m2m {

class Backoff {
 public:
  static constexpr std::chrono::milliseconds kFirst{500};
  static constexpr std::chrono::milliseconds kMax{30000};

  // The pause the next Wait takes.
  std::chrono::milliseconds next() const { return next_; }
  // Sleeps next() (less when `stop` becomes true), then doubles it up to kMax.
  void Wait(const std::atomic<bool>& stop) {
    constexpr std::chrono::milliseconds kStopPoll{100};
    for (auto waited = std::chrono::milliseconds(0); waited < next_ && !stop.load(); waited += kStopPoll) {
      std::this_thread::sleep_for(std::min(kStopPoll, next_ - waited));
    }
    next_ = std::min(next_ * 2, kMax);
  }
  // After a success: the next failure waits kFirst again.
  void Reset() { next_ = kFirst; }

 private:
  std::chrono::milliseconds next_ = kFirst;
};

}  // namespace m2m
