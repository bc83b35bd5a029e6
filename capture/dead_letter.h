// The records of the dead-letter topic: events capture cannot publish, kept whole so that they can
// be examined and replayed (docs/checkpoints.md, "Dead letters").
//
// A record is one JSON object: `reason`, the intended `topic` (empty when unknown), `capture`,
// `at_ms`, the event's `resume_token` (canonical Extended JSON, when it has one) and the whole raw
// event, in one of two forms:
// - `event`: canonical Extended JSON, when libbson can write it (every string and field name is
//   UTF-8) and the record then fits in the limit;
// - `event_bson`: the event's BSON bytes in base64 otherwise. Its size is 4/3 of the BSON, whatever
//   the content, while Extended JSON can be several times the BSON (type wrappers, escapes).
// `event_bytes` is the size of the BSON. Nothing is ever cut.
//
// Thread safety: pure functions.
#pragma once

#include <bson/bson.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "m2m/status.h"

namespace m2m::capture {

struct DeadLetter {
  std::string reason;
  std::string topic;
  std::string capture;
  int64_t at_ms = 0;
};

// The record for `raw`, at most `max_bytes` long. Fails (kInvalidArgument, naming both sizes) only
// when even the base64 form does not fit. Never throws: text that is not UTF-8 in the reason is
// replaced, the event keeps every byte.
Result<std::string> DeadLetterRecord(const bson_t* raw, const DeadLetter& letter, size_t max_bytes);

}  // namespace m2m::capture
