// Reassembly of $changeStreamSplitLargeEvent fragments (see event_codec.h).
#include <fmt/format.h>

#include <cstring>

#include "event_bson.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

std::string ResumeTokenOf(const bson_t* raw) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, raw, "_id")) return "(no _id)";
  return event_internal::ValueToCanonicalJson(&it);
}

Result<int32_t> SplitField(const bson_t* split, const char* key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, split, key) || !BSON_ITER_HOLDS_INT32(&it)) {
    return Status::Invalid(fmt::format("field \"splitEvent.{}\" is missing or not an int32", key));
  }
  return bson_iter_int32(&it);
}

}  // namespace

void SplitEventAssembler::Reset() {
  merged_ = BsonDocument();
  next_fragment_ = 0;
  of_ = 0;
}

Result<std::optional<BsonDocument>> SplitEventAssembler::Add(const bson_t* raw) {
  // Any error drops the pending fragments: the caller resumes before the event's first fragment.
  auto fail = [&](std::string_view cause) -> Status {
    Reset();
    return Status::Invalid(fmt::format("split change stream event at resume token {}: {}", ResumeTokenOf(raw), cause));
  };
  bson_iter_t it;
  if (!bson_iter_init_find(&it, raw, "splitEvent")) {
    if (pending()) return fail(fmt::format("expected fragment {} of {}, got an unsplit event", next_fragment_, of_));
    return std::optional<BsonDocument>(BsonDocument(raw));
  }
  if (!BSON_ITER_HOLDS_DOCUMENT(&it)) return fail("field \"splitEvent\" must be a document");
  BsonDocument split = event_internal::SubDocument(&it);
  auto fragment = SplitField(split.get(), "fragment");
  if (!fragment.ok()) return fail(fragment.status().message());
  auto of = SplitField(split.get(), "of");
  if (!of.ok()) return fail(of.status().message());
  if (*of < 1 || *fragment < 1 || *fragment > *of) return fail(fmt::format("fragment {} of {} is out of range", *fragment, *of));

  int32_t expected = pending() ? next_fragment_ : 1;
  if (*fragment != expected || (pending() && *of != of_)) {
    return fail(pending() ? fmt::format("got fragment {} of {}, expected fragment {} of {}", *fragment, *of,
                                        next_fragment_, of_)
                          : fmt::format("got fragment {} of {} without the fragments before it", *fragment, *of));
  }

  bson_iter_init(&it, raw);
  while (bson_iter_next(&it)) {
    const char* key = bson_iter_key(&it);
    if (std::strcmp(key, "_id") == 0 || std::strcmp(key, "splitEvent") == 0) continue;
    if (bson_has_field(merged_.get(), key)) return fail(fmt::format("field \"{}\" is in two fragments", key));
    bson_append_iter(merged_.mutable_get(), key, -1, &it);
  }

  if (*fragment < *of) {
    next_fragment_ = *fragment + 1;
    of_ = *of;
    return std::optional<BsonDocument>();
  }
  // Only the last fragment's token resumes after the whole event.
  if (!bson_iter_init_find(&it, raw, "_id")) return fail("field \"_id\" (the resume token) is missing");
  BsonDocument event;
  bson_append_iter(event.mutable_get(), "_id", 3, &it);
  bson_concat(event.mutable_get(), merged_.get());
  Reset();
  return std::optional<BsonDocument>(std::move(event));
}

}  // namespace m2m
