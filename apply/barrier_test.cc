#include "barrier.h"

#include <gtest/gtest.h>

namespace m2m::apply {
namespace {

const PartitionId kOld{"m2m.db.old", 0};
const PartitionId kFresh{"m2m.db.fresh", 0};
const PartitionId kOther{"m2m.db.other", 0};

OrderKey Key(const PartitionId& tp, int64_t offset, uint32_t i, bool document = true) {
  return {1700000000, i, document ? OrderKey::Rank::kDocument : OrderKey::Rank::kCollection, tp, offset};
}

// A snapshot read of a snapshot that started at 1700000000.i.
OrderKey Read(const PartitionId& tp, int64_t offset, uint32_t i = 1) {
  return {1700000000, i, OrderKey::Rank::kSnapshot, tp, offset};
}

KafkaMessage Sized(const PartitionId& tp, int64_t offset, size_t bytes);

KafkaMessage Message(const PartitionId& tp, int64_t offset) {
  KafkaMessage m;
  m.topic = tp.first;
  m.partition = tp.second;
  m.offset = offset;
  return m;
}

// rename old -> fresh at i=10 on old's topic; the first insert into fresh (i=11) arrives first.
TEST(BarrierGateTest, AWriteToTheNewNameWaitsForTheRename) {
  BarrierGate gate;
  gate.Admitted(Key(kOld, 4, 5));
  OrderKey insert = Key(kFresh, 0, 11);
  std::vector<PartitionId> undecided = gate.Undecided(insert, {kOld, kFresh});
  ASSERT_EQ(undecided, std::vector<PartitionId>{kOld});
  gate.Hold(Message(kFresh, 0), insert, {{kOld, 7}});  // old has offsets 5, 6 still to come
  gate.Queue(Message(kFresh, 1));
  EXPECT_TRUE(gate.Queued(kFresh));
  gate.Release({{kOld, 5}, {kFresh, 0}});
  EXPECT_FALSE(gate.Pop());

  // The rename (old@5) is a barrier too: fresh's held insert comes after it, so it goes at once.
  OrderKey rename = Key(kOld, 5, 10, false);
  EXPECT_TRUE(gate.Undecided(rename, {kOld, kFresh}).empty());
  gate.Admitted(rename);
  gate.Release({{kOld, 6}, {kFresh, 0}});
  EXPECT_FALSE(gate.Pop());  // old@6 was committed before the insert arrived: it may precede it
  gate.Admitted(Key(kOld, 6, 12));
  gate.Release({{kOld, 7}, {kFresh, 0}});
  auto first = gate.Pop();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.offset, 0);
  EXPECT_TRUE(first->released);
  auto second = gate.Pop();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->message.offset, 1);
  EXPECT_FALSE(second->released);
  EXPECT_TRUE(gate.empty());
}

TEST(BarrierGateTest, APartitionConsumedToItsEndHasNothingBefore) {
  BarrierGate gate;
  OrderKey drop = Key(kOld, 3, 20, false);
  gate.Hold(Message(kOld, 3), drop, {{kOther, 9}});
  gate.Release({{kOld, 3}, {kOther, 8}});
  EXPECT_FALSE(gate.Pop());
  gate.Release({{kOld, 3}, {kOther, 9}});  // the end read after the drop arrived: all before it is in
  auto next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->released);
}

TEST(BarrierGateTest, TheEarlierOfTwoBarriersGoesFirst) {
  BarrierGate gate;
  OrderKey a = Key(kOld, 0, 7, false);
  OrderKey b = Key(kFresh, 0, 7);  // same cluster time: the collection event first
  gate.Hold(Message(kOld, 0), a, {{kFresh, 1}});
  gate.Hold(Message(kFresh, 0), b, {{kOld, 1}});
  gate.Release({{kOld, 0}, {kFresh, 0}});
  auto next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.topic, kOld.first);
  EXPECT_FALSE(gate.Pop());  // b waits until a is admitted
  gate.Admitted(a);
  gate.Release({{kOld, 1}, {kFresh, 0}});
  next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.topic, kFresh.first);
}

TEST(BarrierGateTest, MessagesQueuedBehindAReleasedBarrierMustBeAdmittedFirst) {
  BarrierGate gate;
  gate.Hold(Message(kOld, 0), Key(kOld, 0, 5, false), {});
  gate.Queue(Message(kOld, 1));
  gate.Release({{kOld, 0}});
  ASSERT_TRUE(gate.Pop());  // old@0 goes; old@1 is still queued, not admitted
  OrderKey insert = Key(kFresh, 0, 9);
  gate.Hold(Message(kFresh, 0), insert, {{kOld, 2}});
  gate.Release({{kOld, 5}, {kFresh, 0}});  // consumed that far, but old@1 waits in the queue
  auto next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.topic, kOld.first);
}


KafkaMessage Sized(const PartitionId& tp, int64_t offset, size_t bytes) {
  KafkaMessage m = Message(tp, offset);
  m.value = std::string(bytes - tp.first.size(), 'v');
  return m;
}

// Two collections' snapshots: B's first read arrives while A's snapshot (1000 messages) is still to
// be consumed. Before reads commuted, one of them waited for the other's whole snapshot to be
// consumed, its later reads queued in memory meanwhile.
TEST(BarrierGateTest, SnapshotReadsOfTwoCollectionsDoNotWaitForEachOther) {
  for (uint32_t t : {0u, 1700000000u}) {  // 0: read events written before capture stamped them
    SCOPED_TRACE(t);
    BarrierGate gate;
    OrderKey b0{t, 0, OrderKey::Rank::kSnapshot, kFresh, 0};
    gate.Hold(Message(kFresh, 0), b0, {{kOld, 1000}});
    OrderKey a0{t, 0, OrderKey::Rank::kSnapshot, kOld, 0};
    EXPECT_TRUE(gate.Undecided(a0, {kOld, kFresh}).empty());  // B holds a read of the same snapshot
    gate.Admitted(a0);
    gate.Release({{kOld, 1}, {kFresh, 0}});
    auto next = gate.Pop();  // B's snapshot goes on beside A's
    ASSERT_TRUE(next);
    EXPECT_TRUE(next->released);
  }
}

// The first write of a collection created after the snapshot started (a change-stream event) still
// waits for the snapshot reads of the other partitions: they come before it.
TEST(BarrierGateTest, AChangeStreamEventWaitsForTheSnapshotReadsBeforeIt) {
  BarrierGate gate;
  gate.Admitted(Read(kOld, 0));
  OrderKey insert = Key(kFresh, 0, 5);
  ASSERT_EQ(gate.Undecided(insert, {kOld, kFresh}), std::vector<PartitionId>{kOld});
  gate.Hold(Message(kFresh, 0), insert, {{kOld, 500}});
  gate.Admitted(Read(kOld, 1));
  gate.Release({{kOld, 2}, {kFresh, 0}});
  EXPECT_FALSE(gate.Pop());
  gate.Release({{kOld, 500}, {kFresh, 0}});
  EXPECT_TRUE(gate.Pop());
}

// A read of a snapshot that started after a rename (a --resnapshot, with the rename still to be
// applied from another topic) waits for it.
TEST(BarrierGateTest, ASnapshotReadWaitsForTheEventsBeforeItsSnapshot) {
  BarrierGate gate;
  gate.Admitted(Key(kOld, 0, 0));  // before the rename, which is old@1
  OrderKey read = Read(kFresh, 0, 9);
  ASSERT_EQ(gate.Undecided(read, {kOld, kFresh}), std::vector<PartitionId>{kOld});
  gate.Hold(Message(kFresh, 0), read, {{kOld, 2}});
  gate.Release({{kOld, 1}, {kFresh, 0}});
  EXPECT_FALSE(gate.Pop());
  gate.Admitted(Key(kOld, 1, 4, false));
  gate.Release({{kOld, 2}, {kFresh, 0}});
  EXPECT_TRUE(gate.Pop());
}

// Behind a held barrier, messages are queued up to the byte bound; past it the partition is paused
// and, once its queue has drained, read again from the first message not kept.
TEST(BarrierGateTest, TheQueueBehindABarrierIsBoundedInBytes) {
  BarrierGate gate(3000);
  OrderKey insert = Key(kFresh, 0, 5);
  gate.Hold(Sized(kFresh, 0, 5000), insert, {{kOld, 9}});  // larger than the bound: held all the same
  EXPECT_TRUE(gate.Queued(kFresh));
  EXPECT_TRUE(gate.TakeFlow().empty());
  gate.Queue(Sized(kFresh, 1, 1000));  // over the bound: let go, and the partition paused
  EXPECT_EQ(gate.queued_bytes(), 5000);
  EXPECT_TRUE(gate.Queued(kFresh));  // later messages must not overtake the ones let go
  gate.Queue(Sized(kFresh, 2, 20));
  BarrierGate::Flow flow = gate.TakeFlow();
  ASSERT_EQ(flow.pause.size(), 1u);
  EXPECT_EQ(flow.pause[0].topic, kFresh.first);
  EXPECT_TRUE(flow.resume.empty());
  EXPECT_TRUE(gate.TakeFlow().empty());  // paused once

  gate.Release({{kOld, 9}, {kFresh, 0}});
  EXPECT_FALSE(gate.empty());
  auto next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.offset, 0);
  EXPECT_FALSE(gate.Pop());
  EXPECT_FALSE(gate.empty());  // fresh@1.. are still to be read again
  flow = gate.TakeFlow();
  EXPECT_TRUE(flow.pause.empty());
  ASSERT_EQ(flow.resume.size(), 1u);
  ASSERT_EQ(flow.seek.size(), 1u);
  EXPECT_EQ(flow.seek[0].offset, 1);
  EXPECT_FALSE(gate.Queued(kFresh));
  EXPECT_TRUE(gate.empty());
  EXPECT_EQ(gate.queued_bytes(), 0);
}

// While another partition has messages let go, not yet read again, it is not consumed to its end.
TEST(BarrierGateTest, MessagesLetGoAreNotConsumed) {
  BarrierGate gate(100);
  gate.Hold(Sized(kOld, 0, 50), Key(kOld, 0, 5, false), {});
  gate.Queue(Sized(kOld, 1, 80));  // let go
  gate.Release({{kOld, 0}});
  ASSERT_TRUE(gate.Pop());  // the drop goes; old@1 is to be read again
  gate.Hold(Message(kFresh, 0), Key(kFresh, 0, 9), {{kOld, 2}});
  gate.Release({{kOld, 2}, {kFresh, 0}});  // the end the consumer saw lies past old@1
  EXPECT_FALSE(gate.Pop());
}

// A Reset (a rewind, a rebalance) forgets the queues; partitions paused are resumed, from where the
// caller has moved them.
TEST(BarrierGateTest, AResetResumesWhatWasPaused) {
  BarrierGate gate(10);
  gate.Hold(Sized(kFresh, 0, 50), Key(kFresh, 0, 5), {{kOld, 9}});
  gate.Queue(Sized(kFresh, 1, 50));
  EXPECT_EQ(gate.TakeFlow().pause.size(), 1u);
  gate.Reset();
  EXPECT_TRUE(gate.empty());
  BarrierGate::Flow flow = gate.TakeFlow();
  EXPECT_EQ(flow.resume.size(), 1u);
  EXPECT_TRUE(flow.seek.empty());
  EXPECT_TRUE(gate.TakeFlow().empty());
}

}  // namespace
// A drop at i=10 copied to both partitions of a topic this process owns, p1's copy held first. p0's
// copy goes (p1 holds a later key), but other members' partitions have not reached their copies:
// parked. p1's copy need not wait for it (same event), whereas a later barrier of p1 must.
TEST(BarrierGateTest, CopiesOfOneEventParkedHereDoNotWaitForEachOther) {
  const PartitionId p0{"m2m.db.c", 0}, p1{"m2m.db.c", 1};
  BarrierGate gate;
  OrderKey c0 = Key(p0, 5, 10, false), c1 = Key(p1, 7, 10, false);
  gate.Hold(Message(p1, 7), c1, {{p0, 5}});
  EXPECT_TRUE(gate.Undecided(c0, {p0, p1}).empty());
  gate.Park(Message(p0, 5), c0);
  gate.Queue(Message(p0, 6));
  EXPECT_TRUE(gate.Queued(p0));
  EXPECT_TRUE(gate.Undecided(Key(p1, 7, 10, false), {p0, p1}).empty());
  EXPECT_EQ(gate.Undecided(Key(p1, 8, 11), {p0, p1}), std::vector<PartitionId>{p0});

  gate.Release({{p0, 5}, {p1, 7}});
  auto copy = gate.Pop();
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->message.partition, 1);
  EXPECT_TRUE(copy->released);
  EXPECT_FALSE(gate.Pop());  // p0 stays parked, its later message behind it

  EXPECT_TRUE(gate.Unpark());
  auto again = gate.Pop();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message.offset, 5);
  EXPECT_TRUE(again->released);
  auto next = gate.Pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->message.offset, 6);
  EXPECT_FALSE(next->released);
  EXPECT_TRUE(gate.empty());
  EXPECT_FALSE(gate.Unpark());
}

}  // namespace m2m::apply
