// The quarantine (docs/apply.md, "Quarantine"): the events apply could not apply, kept in
// _m2m_quarantine (bookkeeping.h), and their replay once the cause is fixed, for
// `mongo2mysql quarantine`.
//
// A replay never goes back in time. Applying the quarantined event again would write the document
// as it was then, over whatever newer events of it were applied since (and deltas applied after it
// found no row, or a stale one). Instead the replay reads the document's current state from MongoDB
// by the event's documentKey, as the lookup of an update does, and writes that as a snapshot read
// would: the row whole, child rows included, or no row when the document is gone. The quarantine row
// is marked replayed (replayed_at, and what was done in `replay`) in the same MySQL transaction. A
// change of the document that apply has not reached yet is applied later as usual over a state at
// least as new, so the rows end as MongoDB's.
//
// What cannot be read again document by document is not replayed and says why: an event that cannot
// be decoded (it names no document), and a collection event (a drop or rename concerns every document
// of a collection: copy the collection again with `capture --resnapshot`, then Dismiss it).
//
// Thread safety: a QuarantineTool is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "applier.h"

namespace m2m::apply {

// One row of _m2m_quarantine, with what its raw event is about.
struct QuarantineRow {
  int64_t id = 0;
  std::string group;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string error;
  std::string at;                          // UTC, "YYYY-MM-DD hh:mm:ss.fff"
  std::optional<std::string> replayed_at;  // none until replayed or dismissed
  std::string replay;                      // what the replay did
  // From the raw event: its kind ("insert", "drop", ...), db.collection and documentKey (relaxed
  // Extended JSON; empty for collection events); or `undecodable` with DecodeEvent's error.
  std::string event;
  std::string ns;
  std::string document_key;
  std::string undecodable;

  // Every field whole, for `quarantine list --json` and the status page's API.
  nlohmann::ordered_json ToJson() const;
};

// A quarantine row's event as Kafka carried it (docs/events.md).
struct QuarantinedRecord {
  std::optional<std::string> key;
  std::optional<std::string> value;  // none for a tombstone
  // The document after the change, as relaxed Extended JSON, when the event decodes and carries one
  // (inserts, replaces, updates with their full document); empty otherwise.
  std::string document;
};

struct QuarantineFilter {
  // Only this apply group's events. Default: every group
  std::string group;
  // Only these rows (by id). Default: all
  std::vector<int64_t> ids;
  // Rows replayed or dismissed already too. Default: only the pending ones
  bool include_done = false;
};

// What Replay did with a row.
struct ReplayOutcome {
  enum class Kind { kWritten, kDeleted, kNotReplayed, kFailed };
  Kind kind = Kind::kFailed;
  // kWritten/kDeleted: what was written; kNotReplayed: why not and what to do instead; kFailed: the
  // error (a mapping error, MySQL refusing the row again): the row stays pending.
  std::string detail;
};

class QuarantineTool {
 public:
  // `options`: the database, and the mapping apply uses (the rows are mapped again with it); `mongo`
  // is needed by Replay only.
  static Result<std::unique_ptr<QuarantineTool>> Make(ApplierOptions options);
  ~QuarantineTool();

  // The rows `filter` selects, oldest first.
  Result<std::vector<QuarantineRow>> List(const QuarantineFilter& filter);

  // The event of row `id`, whether pending or not; fails when there is no such row.
  Result<QuarantinedRecord> Record(int64_t id);

  // Writes the current state of the row's document from MongoDB and marks the row replayed (above).
  // Fails only when a server cannot be read or written; what a row itself lacks is in the outcome.
  Result<ReplayOutcome> Replay(const QuarantineRow& row);

  // Marks the row dealt with by hand (`note` says how), without writing anything else.
  Status Dismiss(const QuarantineRow& row, const std::string& note);

 private:
  struct Impl;
  explicit QuarantineTool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2m::apply
