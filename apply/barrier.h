// The order of events across partitions and topics at collection boundaries (docs/apply.md, "Order
// across topics").
//
// Kafka orders the events of one partition; MongoDB orders all changes of a deployment by cluster
// time. Apply runs its partitions independently, which is right as long as an event only touches
// its own document's rows. Two kinds of events depend on what other partitions have done:
//   - a collection event (drop, rename): every event of the collections it touches that precedes it
//     must be applied before its DDL, and none that follows it (a write to a rename's new name
//     travels on another topic and can overtake the rename);
//   - the first event of a collection that has no tables yet: it may be the first write to a rename's
//     target, or to a collection created again after a drop or rename.
// Such an event is a *barrier*: it is held, its partition's later messages queue behind it, until
// every other partition this process owns has nothing left that precedes it in cluster-time order.
// A partition P has nothing left before barrier b when
//   1. the last event admitted from P comes after b, or
//   2. P holds a barrier of its own that comes after b, or
//   3. P has been consumed up to the end it had when b had already been received: capture publishes
//      a deployment's events in cluster-time order, so every event before b was committed by then.
// Conditions 1 and 2, once true, stay true, so the end in 3 is only read (a request to the broker)
// for the partitions where neither holds when b arrives. Keys compare totally (ties by partition
// and offset), so the held barrier that comes first can always go: nothing waits for ever.
//
// Snapshot reads commute: each copies documents of its own collection, so a snapshot read never
// waits for another collection's snapshot reads, only for what precedes its snapshot's start (the
// cluster time capture stamps on it; 0 in events of earlier versions, which precede everything).
// Without that, the first read of every collection waits for the whole snapshot of the
// collections before it, and its partition's messages pile up meanwhile. Change-stream events
// still wait for every snapshot read before them: they come after the snapshot's start.
//
// Copies of a collection event: capture sends a drop or rename to every partition of its topic, and
// one that changes tables runs only once every partition has reached its copy (Applier::Arrive), as
// the copies may belong to different processes. A copy let go before the others have arrived is
// parked: held at the head of its partition like a barrier, until the host unparks it to be offered
// again. Its partition has applied everything before it, so a barrier that is another copy of the
// same event need not wait for it (else two copies owned here would wait for each other).
//
// Memory: the messages queued behind held barriers are bounded in bytes (max_queued_bytes). Past
// the bound a partition's later messages are not kept: the partition stops being fetched (TakeFlow
// says which to pause) and is read again from the first message not kept once its queue has
// drained. A held barrier itself is always kept, so one message larger than the bound still goes.
//
// Thread safety: used by the apply loop's thread only.
#pragma once

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "bookkeeping.h"
#include "m2m/change_event.h"
#include "m2m/kafka_client.h"

namespace m2m::apply {

// Where an event stands in MongoDB's order: its cluster time; at one cluster time the collection
// events first (a write at the same time as a rename is one the rename did not see), then snapshot
// reads (the stream continues from the snapshot's start, inclusive), then change-stream writes;
// then the partition and offset, so that any two events compare.
struct OrderKey {
  enum class Rank : uint8_t { kCollection, kSnapshot, kDocument };
  uint32_t t = 0;
  uint32_t i = 0;
  Rank rank = Rank::kDocument;
  PartitionId partition;
  int64_t offset = 0;
  friend auto operator<=>(const OrderKey&, const OrderKey&) = default;
};

OrderKey KeyOf(const ChangeEvent& event, bool collection_event, const KafkaMessage& message);

// The default bound of the messages queued behind held barriers, in bytes of key and value.
inline constexpr int64_t kDefaultMaxQueuedBytes = int64_t{64} << 20;

class BarrierGate {
 public:
  // `max_queued_bytes`: see "Memory" above. Default: kDefaultMaxQueuedBytes (64 MiB)
  explicit BarrierGate(int64_t max_queued_bytes = kDefaultMaxQueuedBytes) : max_queued_bytes_(max_queued_bytes) {}

  // Forgets every partition's state; consumption starts again from the stored offsets, which the
  // caller seeks to. Partitions paused so far are resumed by the next TakeFlow.
  void Reset();

  // An event was admitted (applied, or quarantined) from its partition.
  void Admitted(const OrderKey& key);

  // The partitions among `owned` (all but the barrier's own) for which conditions 1 and 2 do not
  // hold now: those whose end must be read before the barrier can go. Empty: it can go at once.
  std::vector<PartitionId> Undecided(const OrderKey& barrier, const std::vector<PartitionId>& owned) const;

  // Holds `message`, the barrier `key`, at the head of its partition; `ends` has the end of every
  // partition Undecided returned, read after the message was received.
  void Hold(KafkaMessage message, const OrderKey& key, std::map<PartitionId, int64_t> ends);
  // True while messages of `tp` wait here, or were let go to be read again: newer ones must go to
  // Queue, never be applied before them.
  bool Queued(const PartitionId& tp) const;
  // Queues `message` behind the messages its partition has waiting; past the byte bound, lets it
  // go instead (with every later message of its partition) to be read again from Kafka.
  void Queue(KafkaMessage message);

  // What the consumer must do for the byte bound, since the last call: stop fetching `pause`;
  // fetch again `resume` (partitions whose queue drained, and any paused before a Reset), each of
  // `seek` first moved to its offset, the first message let go. Offsets in `pause` and `resume`
  // are unused. The caller must also forget the partition ends it learnt for `seek`: they lie
  // past messages not applied yet.
  struct Flow {
    std::vector<TopicPartition> pause, resume, seek;
    bool empty() const { return pause.empty() && resume.empty(); }
  };
  Flow TakeFlow();
  int64_t queued_bytes() const { return queued_bytes_; }

  // Holds `message`, a copy (key `key`) that waits for the copies of other partitions, at the head of
  // its partition until Unpark; later messages of the partition queue behind it (Queued).
  void Park(KafkaMessage message, const OrderKey& key);
  // Lets every parked copy go (Pop returns it, as a barrier let go) to be offered again; false when
  // none was parked.
  bool Unpark();

  // Lets go every held barrier for which each other partition has nothing left before it.
  // `consumed` gives, per owned partition, the offset it has been consumed to (the next offset to
  // apply, or the end the consumer reported, whichever is further).
  void Release(const std::map<PartitionId, int64_t>& consumed);

  // The next waiting message that may be applied now, in its partition's order; `released` is set
  // when it is a barrier that was let go (it must not be held again).
  struct Next {
    KafkaMessage message;
    bool released = false;
  };
  std::optional<Next> Pop();

  bool empty() const;

 private:
  struct Partition {
    std::optional<OrderKey> last;     // the last event admitted
    std::optional<OrderKey> barrier;  // set while the head of `waiting` is a held barrier
    bool released = false;            // the head of `waiting` is a barrier that was let go
    bool parked = false;              // the head of `waiting` is a copy parked (`barrier` is its key)
    std::map<PartitionId, int64_t> ends;  // the barrier's condition 3, per undecided partition
    std::deque<KafkaMessage> waiting;
    std::optional<int64_t> let_go;  // the first message let go to be read again, while any is
    bool paused = false;            // TakeFlow asked for the partition to be paused
  };
  bool CanGo(const PartitionId& tp, const Partition& p, const std::map<PartitionId, int64_t>& consumed) const;

  int64_t max_queued_bytes_;
  int64_t queued_bytes_ = 0;  // of every partition's `waiting`
  std::map<PartitionId, Partition> parts_;
  std::vector<PartitionId> unpause_;  // paused before a Reset: resumed by the next TakeFlow
};

}  // namespace m2m::apply
