#include "barrier.h"

#include <gtest/gtest.h>

namespace m2m::apply {
namespace {

const PartitionId kOld{"m2m.db.old", 0};
const PartitionId kFresh{"m2m.db.fresh", 0};
const PartitionId kOther{"m2m.db.other", 0};

OrderKey Key(const PartitionId& tp, int64_t offset, uint32_t i, bool document = true) {
  return {1700000000, i, document, tp, offset};
}

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

}  // namespace
}  // namespace m2m::apply
