#include "range_applier.h"

#include <spdlog/spdlog.h>

namespace m2m::apply {

template <typename Step>
Status RangeRun::Retrying(Step step) {
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> failing_since;
  Status st = step();
  while (!st.ok()) {
    if (!st.retriable()) return st;
    auto now = Clock::now();
    if (!failing_since) failing_since = now;
    if (options_.retry_for.count() > 0 && now - *failing_since >= options_.retry_for) {
      return st.WithContext("gave up after " + std::to_string(options_.retry_for.count()) + " s of failed attempts");
    }
    outcome_.retries++;
    spdlog::warn("apply {}: {}; next attempt in {:.1f} s, redoing the batch", applier_.options().group, st.ToString(),
                 backoff_.next().count() / 1000.0);
    backoff_.Wait(stop_);
    st = applier_.Redo();
    if (st.ok()) st = step();
  }
  backoff_.Reset();
  return Status::OK();
}

Status RangeRun::AddOne(KafkaMessage& record) {
  PartitionId tp{record.topic, record.partition};
  if (!stored_.count(tp)) {
    // Read afresh: the Applier may have owned this partition in an earlier task, since applied further
    // by another.
    M2M_RETURN_NOT_OK(Retrying([&]() -> Status {
      M2M_ASSIGN_OR_RETURN(auto stored, applier_.Own({tp}));
      stored_[tp] = stored.at(tp);
      return Status::OK();
    }));
  }
  // Applied already (a replayed batch, a retried task, an earlier run that released a barrier): no
  // barrier either.
  if (const auto& stored = stored_.at(tp); stored && record.offset < *stored) {
    outcome_.skipped++;
    return Status::OK();
  }
  PreparedRecord prepared;
  M2M_RETURN_NOT_OK(Retrying([&]() -> Status {
    M2M_ASSIGN_OR_RETURN(prepared, applier_.Prepare(std::move(record)));  // left as it was on failure
    return Status::OK();
  }));
  if (prepared.barrier && !options_.release.count(prepared.key)) {
    outcome_.held = prepared.key;
    return Status::OK();
  }
  // A failure keeps the record with the batch, and Redo adds it again: then it is in.
  bool added = false;
  return Retrying([&]() -> Status {
    if (added) return Status::OK();
    added = true;
    return applier_.Add(std::move(prepared));
  });
}

Status RangeRun::Feed(std::vector<KafkaMessage> records) {
  for (KafkaMessage& record : records) {
    if (held()) break;
    M2M_RETURN_NOT_OK(AddOne(record));
    if (held()) break;
    outcome_.records++;
    if (applier_.pending_events() >= options_.max_batch_events ||
        applier_.pending_bytes() >= options_.max_batch_bytes) {
      M2M_RETURN_NOT_OK(Retrying([&] { return applier_.Commit(); }));
    }
  }
  return Status::OK();
}

Result<RangeOutcome> RangeRun::Finish() {
  M2M_RETURN_NOT_OK(Retrying([&] { return applier_.Commit(); }));
  return outcome_;
}

}  // namespace m2m::apply
