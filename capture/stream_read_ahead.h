// StreamReadAhead: a ChangeStreamReader on a thread of its own, handing events over through a queue.
//
// Capture needs two things the reader alone cannot give. (1) Knowing when the source has run dry, to
// commit a Kafka transaction at once instead of waiting out --max-batch-ms: libmongoc does not say
// whether the next event is buffered or needs a getMore that may wait max_await on the server; an
// empty queue does. (2) Reading on while a transaction commits: the next server batch arrives during
// the commit (docs/checkpoints.md, "Batches").
//
// Events, the resume token after each, and errors come out in the order the stream gave them; an
// error ends the read-ahead (the owner reopens from its checkpoint, which drops whatever was read
// ahead). Queued events are bounded by bytes: the thread waits while they exceed max_queued_bytes
// (always taking at least one event, however large).
//
// Thread safety: one owner thread calls Next and resume_token; the read-ahead thread alone uses the
// MongoClient given to Open from then until the StreamReadAhead is destroyed (destruction stops and
// joins it, within one max_await).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "change_stream_reader.h"
#include "m2m/bson_document.h"
#include "m2m/mongo_client.h"
#include "m2m/status.h"

namespace m2m::capture {

class StreamReadAhead {
 public:
  // Opens the stream on this thread (so an unusable resume point fails here, as from
  // ChangeStreamReader::Open), then reads ahead on another. `client` must outlive the read-ahead and
  // not be used elsewhere meanwhile.
  static Result<std::unique_ptr<StreamReadAhead>> Open(MongoClient& client, const StreamOptions& options,
                                                       const ResumePoint& from, int64_t max_queued_bytes);
  ~StreamReadAhead();

  // The next event, waiting up to `wait` for one; nullopt when none came (the stream is idle, or
  // nothing more is buffered: what capture calls dry).
  Result<std::optional<BsonDocument>> Next(std::chrono::milliseconds wait);

  // The token to resume after everything Next has returned (ChangeStreamReader::resume_token), moved
  // on by the server's postBatchResumeToken while the stream is idle and every event was taken.
  std::optional<BsonDocument> resume_token() const;

 private:
  struct Impl;
  explicit StreamReadAhead(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2m::capture
