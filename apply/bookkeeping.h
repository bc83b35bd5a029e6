// The tables apply keeps beside the mapped ones, and the SQL that reads and writes them. Their names
// start with "_m2m", a prefix the mapping never produces for a collection's table unless the
// collection itself is named so (the catalog then gives that collection another name).
//
//   _m2m_offsets     (group_id, topic, partition, next_offset, updated_at, applied_events,
//                    last_event_ms): per consumer group and partition, the offset of the first message
//                    NOT yet applied. Written in the same transaction as the rows, so the rows and the
//                    position never disagree. applied_events (a running count) and last_event_ms (the
//                    Kafka timestamp of the last event applied) are for `mongo2mysql status`.
//   _m2m_quarantine  (id, group_id, topic, partition, offset, msg_key, raw_event, error, at,
//                    replayed_at, replay): events that could not be applied, written in the transaction
//                    that moves past them; replayed_at and replay say when and how `mongo2mysql
//                    quarantine` dealt with one (quarantine.h), NULL until then.
//   _m2m_quarantine_parts (quarantine_id, part, bytes): the raw event of a quarantine row whose
//                    raw_event is NULL because it was too large for one statement (max_allowed_packet),
//                    in parts 0, 1, ... to be joined in order.
//   _m2m_collection_events (group_id, topic, cluster_t, cluster_i, partition, offset, event, copies,
//                    arrived_at, executed_at): the copies of the drops and renames that change tables,
//                    one row per partition that reached its copy (docs/apply.md, "Collection events").
//                    The event is identified by its topic and cluster time; it was executed (its DDL
//                    run) when any of its rows has executed_at, written in the transaction that moves
//                    the executing copy's offset.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "m2m/kafka_client.h"
#include "m2m/status.h"

namespace m2m::apply {

inline constexpr char kOffsetsTable[] = "_m2m_offsets";
inline constexpr char kQuarantineTable[] = "_m2m_quarantine";
inline constexpr char kQuarantinePartsTable[] = "_m2m_quarantine_parts";
inline constexpr char kCollectionEventsTable[] = "_m2m_collection_events";

// CREATE TABLE IF NOT EXISTS for the tables above, and the columns older ones lack (the database
// must be selected).
std::vector<std::string> BookkeepingDdl();

// A partition, without a position.
using PartitionId = std::pair<std::string, int32_t>;

// "topic[partition]", for messages.
std::string PartitionName(const PartitionId& partition);

// SELECT topic, partition, next_offset of `group` for `partitions` (all of the group when empty);
// with `for_update` the rows are locked until the transaction ends.
std::string SelectOffsetsSql(const std::string& group, const std::vector<PartitionId>& partitions,
                             bool for_update);

// What a batch applied of one partition.
struct AppliedEvents {
  int64_t events = 0;
  int64_t last_event_ms = 0;  // Kafka timestamp of the last of them
};

// Upserts next_offset for each partition of `group`, adding each partition's `applied` events to its
// running count.
std::string UpsertOffsetsSql(const std::string& group, const std::map<PartitionId, int64_t>& next_offsets,
                             const std::map<PartitionId, AppliedEvents>& applied = {});

// Where a partition starts: its stored next offset, or the beginning when nothing of it was applied
// yet (`stored` none). Kafka holds the partition's offsets [first, end) (KafkaInspector::Range). A
// stored offset outside [first, end] means events between the last batch applied and what Kafka holds
// now are gone: retention or DeleteRecords removed them while apply was behind, or the topic was
// deleted and created again. Starting anywhere else would skip them without a trace (librdkafka's
// auto.offset.reset), so that is an error (kHistoryLost) naming the partition, the stored offset, the
// log's first offset and the ways out (docs/apply.md, "Events lost from Kafka"). With
// `accept_lost_events` the partition starts at `first` instead and `*lost` says what was skipped.
Result<int64_t> StartOffset(const std::string& group, const PartitionId& partition, std::optional<int64_t> stored,
                            int64_t first, int64_t end, bool accept_lost_events, std::string* lost);

// One event that could not be applied.
struct QuarantinedEvent {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::string error;
};

// The INSERTs of the events into the quarantine table, none longer than `max_statement_bytes`
// (for a key and an error that fit): an event whose raw bytes do not fit in one statement gets its
// row with raw_event NULL and the bytes in kQuarantinePartsTable. Run them in order in one
// transaction. None when `events` is empty.
std::vector<std::string> InsertQuarantineSql(const std::string& group, const std::vector<QuarantinedEvent>& events,
                                             size_t max_statement_bytes);

// A drop or rename, as each of its copies names it: its topic and its cluster time.
struct CollectionEventId {
  std::string topic;
  uint32_t t = 0;
  uint32_t i = 0;
};

// One copy of a collection event at `partition`@`offset`; `event` names it (drop, rename) and `copies`
// is how many there are (0: not known).
struct CollectionEventCopy {
  CollectionEventId id;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string event;
  int32_t copies = 0;
};

// Records that the copy's partition has reached it (INSERT IGNORE: again after a crash or a rewind,
// nothing changes).
std::string InsertCopyArrivalSql(const std::string& group, const CollectionEventCopy& copy);
// Marks the event executed, on the copy's row (inserted when missing).
std::string MarkCollectionEventExecutedSql(const std::string& group, const CollectionEventCopy& copy);
// SELECT `partition`, executed_at IS NOT NULL: one row per copy that arrived.
std::string SelectCollectionEventSql(const std::string& group, const CollectionEventId& id);

// True when `status` says the event itself cannot be applied, so the same statements would fail
// again on every retry: a mapping error, or a MySQL error about the data or the table it needs (value
// too long or out of range, row or table too wide, duplicate or missing key, a constraint). Such an
// event is quarantined. Any other error (connection, permissions, a missing table of ours) is not the
// event's fault and stops or retries the batch instead.
bool IsEventError(const Status& status);

}  // namespace m2m::apply
