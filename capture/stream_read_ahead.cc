#include "stream_read_ahead.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace m2m::capture {

namespace {
using Clock = std::chrono::steady_clock;

// What the read-ahead thread hands over: an event with the token after it, a token alone (an empty
// server batch moved the postBatchResumeToken), or the error that ended the stream.
struct Item {
  std::optional<BsonDocument> event;
  std::optional<BsonDocument> token;
  std::optional<Status> error;
  int64_t bytes = 0;
};
}  // namespace

struct StreamReadAhead::Impl {
  std::unique_ptr<ChangeStreamReader> reader;
  std::chrono::milliseconds max_await;
  int64_t max_queued_bytes;

  std::mutex mu;
  std::condition_variable item_added, room_made;  // room_made also wakes the thread to stop
  std::deque<Item> queue;
  int64_t queued_bytes = 0;
  bool stopping = false;
  std::thread thread;

  // Owner thread only.
  std::optional<BsonDocument> token;
  std::optional<Status> failed;

  void Push(Item item) {
    std::unique_lock lock(mu);
    room_made.wait(lock, [&] { return stopping || queued_bytes == 0 || queued_bytes + item.bytes <= max_queued_bytes; });
    // Only the newest of consecutive idle tokens matters.
    if (!item.event && !item.error && !queue.empty() && !queue.back().event && !queue.back().error) queue.pop_back();
    queued_bytes += item.bytes;
    queue.push_back(std::move(item));
    item_added.notify_one();
  }

  bool Stopping() {
    std::lock_guard lock(mu);
    return stopping;
  }

  void ReadAhead() {
    auto pause = std::chrono::milliseconds(10);
    std::optional<BsonDocument> handed = reader->resume_token();
    while (!Stopping()) {
      auto polled_at = Clock::now();
      auto next = reader->Next();
      if (!next.ok()) {
        Push(Item{std::nullopt, std::nullopt, next.status(), 0});
        return;
      }
      auto after = reader->resume_token();
      if (*next) {
        pause = std::chrono::milliseconds(10);
        int64_t bytes = (*next)->get()->len;
        handed = after;
        Push(Item{std::move(*next), std::move(after), std::nullopt, bytes});
        continue;
      }
      if (after && (!handed || !(*after == *handed))) {
        handed = after;
        Push(Item{std::nullopt, std::move(after), std::nullopt, 0});
      }
      // A server that answers an empty batch before max_await (no await support) is polled with a
      // growing pause instead of in a busy loop.
      if (Clock::now() - polled_at < max_await / 2) {
        std::unique_lock lock(mu);
        room_made.wait_for(lock, pause, [&] { return stopping; });
        pause = std::min(pause * 2, max_await);
      }
    }
  }
};

StreamReadAhead::StreamReadAhead(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamReadAhead::~StreamReadAhead() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->room_made.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<StreamReadAhead>> StreamReadAhead::Open(MongoClient& client, const StreamOptions& options,
                                                               const ResumePoint& from, int64_t max_queued_bytes) {
  auto impl = std::make_unique<Impl>();
  M2M_ASSIGN_OR_RETURN(impl->reader, ChangeStreamReader::Open(client, options, from));
  impl->max_await = options.max_await;
  impl->max_queued_bytes = max_queued_bytes;
  impl->token = impl->reader->resume_token();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ReadAhead(); });
  return std::unique_ptr<StreamReadAhead>(new StreamReadAhead(std::move(impl)));
}

Result<std::optional<BsonDocument>> StreamReadAhead::Next(std::chrono::milliseconds wait) {
  Impl& s = *impl_;
  if (s.failed) return *s.failed;
  auto deadline = Clock::now() + wait;
  std::unique_lock lock(s.mu);
  while (true) {
    while (!s.queue.empty()) {
      Item item = std::move(s.queue.front());
      s.queue.pop_front();
      s.queued_bytes -= item.bytes;
      // Waking the reader for every event taken from a full queue would switch threads per event:
      // it is woken once half the bound is free (or all of it, for an item larger than half).
      if (s.queued_bytes <= s.max_queued_bytes / 2) s.room_made.notify_one();
      if (item.error) {
        s.failed = std::move(item.error);
        return *s.failed;
      }
      if (item.token) s.token = std::move(item.token);
      if (item.event) return std::move(item.event);
    }
    if (!s.item_added.wait_until(lock, deadline, [&] { return !s.queue.empty(); })) return std::optional<BsonDocument>{};
  }
}

std::optional<BsonDocument> StreamReadAhead::resume_token() const { return impl_->token; }

}  // namespace m2m::capture
