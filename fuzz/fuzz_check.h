// Shared by the libFuzzer targets in this directory (docs/testing.md, "Fuzzing").
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "m2m/change_event.h"
#include "m2m/event_codec.h"

namespace m2m::fuzz {

// A broken invariant: libFuzzer saves the input as crash-<sha1> when the process aborts.
[[noreturn]] inline void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

inline std::string Show(const std::optional<BsonDocument>& doc) {
  return doc ? doc->ToCanonicalJson() : "(none)";
}

// Which field of two events differs (documents compared with bson_equal), or "" when none does.
inline std::string EventDifference(const ChangeEvent& a, const ChangeEvent& b) {
  if (a.kind != b.kind) return "kind";
  if (a.db != b.db || a.collection != b.collection) return "db/collection";
  if (!(a.document_key == b.document_key)) return "document_key";
  if (a.after != b.after) return "after: " + Show(a.after) + " vs " + Show(b.after);
  if (a.before != b.before) return "before: " + Show(a.before) + " vs " + Show(b.before);
  if (a.update.has_value() != b.update.has_value()) return "update present";
  if (a.update) {
    const UpdateDescription& x = *a.update;
    const UpdateDescription& y = *b.update;
    if (!(x.updated_fields == y.updated_fields)) return "update.updated_fields";
    if (x.removed_fields != y.removed_fields) return "update.removed_fields";
    if (x.truncated_arrays.size() != y.truncated_arrays.size()) return "update.truncated_arrays";
    for (size_t i = 0; i < x.truncated_arrays.size(); ++i) {
      if (x.truncated_arrays[i].field != y.truncated_arrays[i].field ||
          x.truncated_arrays[i].new_size != y.truncated_arrays[i].new_size) {
        return "update.truncated_arrays";
      }
    }
    if (!(x.disambiguated_paths == y.disambiguated_paths)) return "update.disambiguated_paths";
  }
  if (a.rename_to_db != b.rename_to_db || a.rename_to_collection != b.rename_to_collection) return "rename_to";
  if (a.resume_token != b.resume_token) return "resume_token";
  if (a.cluster_time_s != b.cluster_time_s || a.cluster_time_i != b.cluster_time_i) return "cluster_time";
  if (a.wall_time_ms != b.wall_time_ms) return "wall_time_ms";
  if (a.txn_lsid != b.txn_lsid || a.txn_number != b.txn_number) return "txn";
  return "";
}

// event_codec.h's promise: DecodeEvent(EncodeKey(e), EncodeValue(e)) gives back `e` exactly.
inline void CheckRoundTrip(const ChangeEvent& event, const char* origin) {
  std::string key = EncodeKey(event);
  std::string value = EncodeValue(event);
  auto again = DecodeEvent(key, value);
  if (!again.ok()) Fail(origin, "re-encoded event does not decode: " + again.status().ToString() + "\n" + value);
  if (!again->has_value()) Fail(origin, "re-encoded event decodes as a tombstone\n" + value);
  std::string diff = EventDifference(**again, event);
  if (!diff.empty()) Fail(origin, "re-encoded event differs in " + diff + "\n" + value);
}

}  // namespace m2m::fuzz
