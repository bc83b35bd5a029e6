#include "barrier.h"

#include <limits>

namespace m2m::apply {
namespace {

// What must be applied before barrier `b` is what comes before this key: `b` itself, except for a
// snapshot read, which commutes with every snapshot read of its time (of any partition) and so
// waits only for what precedes them all.
OrderKey WaitsFor(const OrderKey& b) {
  if (b.rank != OrderKey::Rank::kSnapshot) return b;
  return {b.t, b.i, b.rank, {std::string(), std::numeric_limits<int32_t>::min()}, std::numeric_limits<int64_t>::min()};
}

// `parked`, a parked copy, and barrier `b` are copies of one collection event.
bool SameEvent(const OrderKey& parked, const OrderKey& b) {
  return b.rank == OrderKey::Rank::kCollection && parked.rank == OrderKey::Rank::kCollection && parked.t == b.t &&
         parked.i == b.i && parked.partition.first == b.partition.first;
}

int64_t SizeOf(const KafkaMessage& m) {
  return static_cast<int64_t>(m.topic.size() + (m.key ? m.key->size() : 0) + (m.value ? m.value->size() : 0));
}

}  // namespace

OrderKey KeyOf(const ChangeEvent& event, bool collection_event, const KafkaMessage& message) {
  OrderKey::Rank rank = collection_event                     ? OrderKey::Rank::kCollection
                        : event.kind == EventKind::kRead ? OrderKey::Rank::kSnapshot
                                                             : OrderKey::Rank::kDocument;
  return {event.cluster_time_s, event.cluster_time_i, rank, {message.topic, message.partition}, message.offset};
}

void BarrierGate::Reset() {
  for (const auto& [tp, p] : parts_) {
    if (p.paused) unpause_.push_back(tp);
  }
  parts_.clear();
  queued_bytes_ = 0;
}

void BarrierGate::Admitted(const OrderKey& key) {
  std::optional<OrderKey>& last = parts_[key.partition].last;
  if (!last || *last < key) last = key;
}

std::vector<PartitionId> BarrierGate::Undecided(const OrderKey& barrier, const std::vector<PartitionId>& owned) const {
  OrderKey bound = WaitsFor(barrier);
  std::vector<PartitionId> out;
  for (const PartitionId& tp : owned) {
    if (tp == barrier.partition) continue;
    auto p = parts_.find(tp);
    bool decided = p != parts_.end() && ((p->second.last && *p->second.last > bound) ||
                                         (p->second.barrier && *p->second.barrier > bound) ||
                                         (p->second.parked && SameEvent(*p->second.barrier, barrier)));
    if (!decided) out.push_back(tp);
  }
  return out;
}

void BarrierGate::Hold(KafkaMessage message, const OrderKey& key, std::map<PartitionId, int64_t> ends) {
  Partition& p = parts_[key.partition];
  p.barrier = key;
  p.released = false;
  p.ends = std::move(ends);
  queued_bytes_ += SizeOf(message);
  p.waiting.push_front(std::move(message));
}

void BarrierGate::Park(KafkaMessage message, const OrderKey& key) {
  Hold(std::move(message), key, {});
  parts_[key.partition].parked = true;
}

bool BarrierGate::Unpark() {
  bool any = false;
  for (auto& [tp, p] : parts_) {
    if (!p.parked) continue;
    p.parked = false;
    p.barrier.reset();
    p.released = true;
    any = true;
  }
  return any;
}

bool BarrierGate::Queued(const PartitionId& tp) const {
  auto p = parts_.find(tp);
  return p != parts_.end() && (!p->second.waiting.empty() || p->second.let_go);
}

void BarrierGate::Queue(KafkaMessage message) {
  Partition& p = parts_[{message.topic, message.partition}];
  if (p.let_go) return;  // after the first message let go: read again with it
  int64_t size = SizeOf(message);
  if (queued_bytes_ + size > max_queued_bytes_) {
    p.let_go = message.offset;
    return;
  }
  queued_bytes_ += size;
  p.waiting.push_back(std::move(message));
}

BarrierGate::Flow BarrierGate::TakeFlow() {
  Flow flow;
  for (const PartitionId& tp : unpause_) flow.resume.push_back({tp.first, tp.second});
  unpause_.clear();
  for (auto& [tp, p] : parts_) {
    if (p.let_go && !p.paused) {
      flow.pause.push_back({tp.first, tp.second});
      p.paused = true;
    }
    if (p.let_go && p.waiting.empty()) {  // drained: what was let go comes next
      flow.resume.push_back({tp.first, tp.second});
      flow.seek.push_back({tp.first, tp.second, *p.let_go});
      p.let_go.reset();
      p.paused = false;
    }
  }
  return flow;
}

bool BarrierGate::CanGo(const PartitionId& tp, const Partition& p,
                        const std::map<PartitionId, int64_t>& consumed) const {
  OrderKey bound = WaitsFor(*p.barrier);
  for (const auto& [other, position] : consumed) {
    if (other == tp) continue;
    auto o = parts_.find(other);
    if (o != parts_.end()) {
      if (o->second.last && *o->second.last > bound) continue;  // 1
      if (o->second.barrier) {
        if (*o->second.barrier > bound) continue;  // 2
        if (o->second.parked && SameEvent(*o->second.barrier, *p.barrier)) continue;  // reached this event
        return false;  // that one goes first
      }
      // Consumed, but not admitted yet (queued, or let go to be read again).
      if (!o->second.waiting.empty() || o->second.let_go) return false;
    }
    auto end = p.ends.find(other);
    if (end != p.ends.end() && position < end->second) return false;  // 3 not yet
  }
  return true;
}

void BarrierGate::Release(const std::map<PartitionId, int64_t>& consumed) {
  for (auto& [tp, p] : parts_) {
    if (p.barrier && !p.parked && CanGo(tp, p, consumed)) {
      p.barrier.reset();
      p.ends.clear();
      p.released = true;
    }
  }
}

std::optional<BarrierGate::Next> BarrierGate::Pop() {
  for (auto& [tp, p] : parts_) {
    if (p.barrier || p.waiting.empty()) continue;
    Next next{std::move(p.waiting.front()), p.released};
    p.waiting.pop_front();
    p.released = false;
    queued_bytes_ -= SizeOf(next.message);
    return next;
  }
  return std::nullopt;
}

bool BarrierGate::empty() const {
  for (const auto& [tp, p] : parts_) {
    if (!p.waiting.empty() || p.let_go) return false;
  }
  return true;
}

}  // namespace m2m::apply
