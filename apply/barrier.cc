#include "barrier.h"

namespace m2m::apply {

OrderKey KeyOf(const ChangeEvent& event, bool collection_event, const KafkaMessage& message) {
  return {event.cluster_time_s, event.cluster_time_i, !collection_event, {message.topic, message.partition},
          message.offset};
}

void BarrierGate::Admitted(const OrderKey& key) {
  std::optional<OrderKey>& last = parts_[key.partition].last;
  if (!last || *last < key) last = key;
}

std::vector<PartitionId> BarrierGate::Undecided(const OrderKey& barrier, const std::vector<PartitionId>& owned) const {
  std::vector<PartitionId> out;
  for (const PartitionId& tp : owned) {
    if (tp == barrier.partition) continue;
    auto p = parts_.find(tp);
    bool decided = p != parts_.end() && ((p->second.last && *p->second.last > barrier) ||
                                         (p->second.barrier && *p->second.barrier > barrier));
    if (!decided) out.push_back(tp);
  }
  return out;
}

void BarrierGate::Hold(KafkaMessage message, const OrderKey& key, std::map<PartitionId, int64_t> ends) {
  Partition& p = parts_[key.partition];
  p.barrier = key;
  p.released = false;
  p.ends = std::move(ends);
  p.waiting.push_front(std::move(message));
}

bool BarrierGate::Queued(const PartitionId& tp) const {
  auto p = parts_.find(tp);
  return p != parts_.end() && !p->second.waiting.empty();
}

void BarrierGate::Queue(KafkaMessage message) {
  parts_[{message.topic, message.partition}].waiting.push_back(std::move(message));
}

bool BarrierGate::CanGo(const PartitionId& tp, const Partition& p,
                        const std::map<PartitionId, int64_t>& consumed) const {
  const OrderKey& barrier = *p.barrier;
  for (const auto& [other, position] : consumed) {
    if (other == tp) continue;
    auto o = parts_.find(other);
    if (o != parts_.end()) {
      if (o->second.last && *o->second.last > barrier) continue;  // 1
      if (o->second.barrier) {
        if (*o->second.barrier > barrier) continue;  // 2
        return false;  // that one goes first
      }
      if (!o->second.waiting.empty()) return false;  // consumed, but not admitted yet
    }
    auto end = p.ends.find(other);
    if (end != p.ends.end() && position < end->second) return false;  // 3 not yet
  }
  return true;
}

void BarrierGate::Release(const std::map<PartitionId, int64_t>& consumed) {
  for (auto& [tp, p] : parts_) {
    if (p.barrier && CanGo(tp, p, consumed)) {
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
    return next;
  }
  return std::nullopt;
}

bool BarrierGate::empty() const {
  for (const auto& [tp, p] : parts_) {
    if (!p.waiting.empty()) return false;
  }
  return true;
}

}  // namespace m2m::apply
