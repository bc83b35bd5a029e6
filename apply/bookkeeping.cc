#include "bookkeeping.h"

#include <algorithm>

#include "m2m/identifiers.h"

namespace m2m::apply {

std::string PartitionName(const PartitionId& partition) {
  return partition.first + "[" + std::to_string(partition.second) + "]";
}

namespace {

std::string Nullable(const std::optional<std::string>& bytes) { return bytes ? HexLiteral(*bytes) : "NULL"; }

std::string PartitionFilter(const std::string& group, const std::vector<PartitionId>& partitions) {
  std::string sql = " WHERE group_id=" + QuoteString(group);
  if (partitions.empty()) return sql;
  sql += " AND (topic,`partition`) IN (";
  for (size_t i = 0; i < partitions.size(); ++i) {
    sql += (i ? ",(" : "(") + QuoteString(partitions[i].first) + "," + std::to_string(partitions[i].second) + ")";
  }
  return sql + ")";
}

}  // namespace

std::vector<std::string> BookkeepingDdl() {
  // Names are VARBINARY: Kafka topic and group names are case-sensitive.
  return {
      std::string("CREATE TABLE IF NOT EXISTS ") + kOffsetsTable +
          " (group_id VARBINARY(255) NOT NULL, topic VARBINARY(255) NOT NULL, `partition` INT NOT NULL, "
          "next_offset BIGINT NOT NULL, updated_at DATETIME(3) NOT NULL, "
          "applied_events BIGINT NOT NULL DEFAULT 0, last_event_ms BIGINT NULL, "
          "PRIMARY KEY (group_id, topic, `partition`)) ENGINE=InnoDB "
          "COMMENT='mongo2mysql apply: next Kafka offset to apply, per consumer group and partition'",
      // Tables made before applied_events existed get the columns. MySQL has no ADD COLUMN IF NOT
      // EXISTS (MariaDB has), so the ALTER is chosen by a query and run as a prepared statement.
      std::string("SET @m2m_ddl = (SELECT IF(COUNT(*) = 0, 'ALTER TABLE ") + kOffsetsTable +
          " ADD COLUMN applied_events BIGINT NOT NULL DEFAULT 0, ADD COLUMN last_event_ms BIGINT NULL', 'DO 0') "
          "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" +
          kOffsetsTable + "' AND COLUMN_NAME = 'applied_events')",
      "PREPARE m2m_ddl FROM @m2m_ddl",
      "EXECUTE m2m_ddl",
      "DEALLOCATE PREPARE m2m_ddl",
      std::string("CREATE TABLE IF NOT EXISTS ") + kQuarantineTable +
          " (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, group_id VARBINARY(255) NOT NULL, "
          "topic VARBINARY(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, "
          "msg_key LONGBLOB NULL, raw_event LONGBLOB NULL, error TEXT NOT NULL, at DATETIME(3) NOT NULL, "
          "replayed_at DATETIME(3) NULL, replay TEXT NULL, KEY (topic, `partition`, `offset`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
          "COMMENT='mongo2mysql apply: events that could not be applied'",
      std::string("CREATE TABLE IF NOT EXISTS ") + kQuarantinePartsTable +
          " (quarantine_id BIGINT NOT NULL, part INT NOT NULL, bytes LONGBLOB NOT NULL, "
          "PRIMARY KEY (quarantine_id, part)) ENGINE=InnoDB "
          "COMMENT='mongo2mysql apply: raw events of _m2m_quarantine too large for one statement, in order'",
      // Quarantine tables made before `mongo2mysql quarantine replay` existed get its columns.
      std::string("SET @m2m_ddl = (SELECT IF(COUNT(*) = 0, 'ALTER TABLE ") + kQuarantineTable +
          " ADD COLUMN replayed_at DATETIME(3) NULL, ADD COLUMN replay TEXT NULL', 'DO 0') "
          "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" +
          kQuarantineTable + "' AND COLUMN_NAME = 'replayed_at')",
      "PREPARE m2m_ddl FROM @m2m_ddl",
      "EXECUTE m2m_ddl",
      "DEALLOCATE PREPARE m2m_ddl",
      std::string("CREATE TABLE IF NOT EXISTS ") + kCollectionEventsTable +
          " (group_id VARBINARY(255) NOT NULL, topic VARBINARY(255) NOT NULL, cluster_t INT UNSIGNED NOT NULL, "
          "cluster_i INT UNSIGNED NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, "
          "event VARCHAR(32) NOT NULL, copies INT NOT NULL, arrived_at DATETIME(3) NOT NULL, "
          "executed_at DATETIME(3) NULL, PRIMARY KEY (group_id, topic, cluster_t, cluster_i, `partition`)) "
          "ENGINE=InnoDB COMMENT='mongo2mysql apply: the copies of drops and renames that reached each partition, "
          "and whether the event was executed'",
  };
}

namespace {

std::string CopyRow(const std::string& group, const CollectionEventCopy& c, bool executed) {
  return "(" + QuoteString(group) + "," + QuoteString(c.id.topic) + "," + std::to_string(c.id.t) + "," +
         std::to_string(c.id.i) + "," + std::to_string(c.partition) + "," + std::to_string(c.offset) + "," +
         QuoteString(c.event) + "," + std::to_string(c.copies) + ",UTC_TIMESTAMP(3)," +
         (executed ? "UTC_TIMESTAMP(3)" : "NULL") + ")";
}

constexpr char kCopyColumns[] =
    " (group_id, topic, cluster_t, cluster_i, `partition`, `offset`, event, copies, arrived_at, executed_at) VALUES ";

}  // namespace

std::string InsertCopyArrivalSql(const std::string& group, const CollectionEventCopy& copy) {
  return std::string("INSERT IGNORE INTO ") + kCollectionEventsTable + kCopyColumns + CopyRow(group, copy, false);
}

std::string MarkCollectionEventExecutedSql(const std::string& group, const CollectionEventCopy& copy) {
  return std::string("INSERT INTO ") + kCollectionEventsTable + kCopyColumns + CopyRow(group, copy, true) +
         " ON DUPLICATE KEY UPDATE executed_at = VALUES(executed_at)";
}

std::string SelectCollectionEventSql(const std::string& group, const CollectionEventId& id) {
  return std::string("SELECT `partition`, executed_at IS NOT NULL FROM ") + kCollectionEventsTable +
         " WHERE group_id=" + QuoteString(group) + " AND topic=" + QuoteString(id.topic) +
         " AND cluster_t=" + std::to_string(id.t) + " AND cluster_i=" + std::to_string(id.i);
}

std::string SelectOffsetsSql(const std::string& group, const std::vector<PartitionId>& partitions,
                             bool for_update) {
  return std::string("SELECT topic, `partition`, next_offset FROM ") + kOffsetsTable +
         PartitionFilter(group, partitions) + (for_update ? " FOR UPDATE" : "");
}

std::string UpsertOffsetsSql(const std::string& group, const std::map<PartitionId, int64_t>& next_offsets,
                             const std::map<PartitionId, AppliedEvents>& applied) {
  std::string sql = std::string("INSERT INTO ") + kOffsetsTable +
                    " (group_id, topic, `partition`, next_offset, applied_events, last_event_ms, updated_at) VALUES ";
  bool first = true;
  for (const auto& [tp, next] : next_offsets) {
    auto it = applied.find(tp);
    AppliedEvents a = it == applied.end() ? AppliedEvents{} : it->second;
    sql += (first ? "(" : ",(") + QuoteString(group) + "," + QuoteString(tp.first) + "," +
           std::to_string(tp.second) + "," + std::to_string(next) + "," + std::to_string(a.events) + "," +
           (a.last_event_ms > 0 ? std::to_string(a.last_event_ms) : "NULL") + ",UTC_TIMESTAMP(3))";
    first = false;
  }
  return sql + " ON DUPLICATE KEY UPDATE next_offset=VALUES(next_offset), "
               "applied_events=applied_events+VALUES(applied_events), "
               "last_event_ms=COALESCE(VALUES(last_event_ms), last_event_ms), updated_at=VALUES(updated_at)";
}

std::vector<std::string> InsertQuarantineSql(const std::string& group, const std::vector<QuarantinedEvent>& events,
                                             size_t max_statement_bytes) {
  const std::string head = std::string("INSERT INTO ") + kQuarantineTable +
                           " (group_id, topic, `partition`, `offset`, msg_key, raw_event, error, at) VALUES ";
  auto row = [&](const QuarantinedEvent& e, const std::string& raw_event, const std::string& error) {
    return "(" + QuoteString(group) + "," + QuoteString(e.topic) + "," + std::to_string(e.partition) + "," +
           std::to_string(e.offset) + "," + Nullable(e.key) + "," + raw_event + "," + QuoteString(error) +
           ",UTC_TIMESTAMP(3))";
  };
  std::vector<std::string> out;
  std::string rows;
  auto flush = [&] {
    if (!rows.empty()) out.push_back(head + rows);
    rows.clear();
  };
  for (const QuarantinedEvent& e : events) {
    std::string whole = row(e, Nullable(e.value), e.error);
    if (head.size() + whole.size() <= max_statement_bytes) {
      if (!rows.empty() && head.size() + rows.size() + 1 + whole.size() > max_statement_bytes) flush();
      rows += (rows.empty() ? "" : ",") + whole;
      continue;
    }
    // Too large for one statement: the row without it, then the raw event in parts, each
    // referring to the row by the id its INSERT generated (LAST_INSERT_ID() keeps it, as the
    // parts table generates none).
    flush();
    out.push_back(head + row(e, "NULL",
                             e.error + " (raw_event: " + std::to_string(e.value->size()) + " bytes, in " +
                                 kQuarantinePartsTable + ")"));
    const std::string parts_head =
        std::string("INSERT INTO ") + kQuarantinePartsTable + " (quarantine_id, part, bytes) VALUES (LAST_INSERT_ID(),";
    constexpr size_t kPartStatementOverhead = 64;
    size_t part_bytes = std::max<size_t>((max_statement_bytes - parts_head.size() - kPartStatementOverhead) / 2, 1);
    for (size_t offset = 0, part = 0; offset < e.value->size(); offset += part_bytes, ++part) {
      out.push_back(parts_head + std::to_string(part) + "," +
                    HexLiteral(std::string_view(*e.value).substr(offset, part_bytes)) + ")");
    }
  }
  flush();
  return out;
}

Result<int64_t> StartOffset(const std::string& group, const PartitionId& partition, std::optional<int64_t> stored,
                            int64_t first, int64_t end, bool accept_lost_events, std::string* lost) {
  if (!stored) return kOffsetBeginning;
  if (*stored >= first && *stored <= end) return *stored;
  std::string name = PartitionName(partition);
  std::string gap =
      *stored < first
          ? "events " + std::to_string(*stored) + ".." + std::to_string(first - 1) + " of " + name +
                " are no longer in Kafka: group " + group + " has applied up to offset " + std::to_string(*stored) +
                ", and the log's first offset is now " + std::to_string(first) +
                " (retention or DeleteRecords removed the rest before apply read them)"
          : name + " ends at offset " + std::to_string(end) + ", before offset " + std::to_string(*stored) +
                " that group " + group + " has applied up to (was the topic deleted and created again?); "
                "its log's first offset is " + std::to_string(first);
  if (accept_lost_events) {
    *lost = gap + "; --accept-lost-events: continuing at offset " + std::to_string(first);
    return first;
  }
  return Status(StatusCode::kHistoryLost,
                gap + ". Their changes are missing from MySQL. To repair: copy the collection again (mongo2mysql "
                      "capture ... --resnapshot), then run apply once with --accept-lost-events, which goes on at "
                      "offset " + std::to_string(first) + " (docs/apply.md, \"Events lost from Kafka\"); "
                      "--accept-lost-events without a new copy accepts the loss (mongo2mysql verify shows it)");
}

bool IsEventError(const Status& status) {
  if (status.code() == StatusCode::kMapping) return true;
  if (status.code() != StatusCode::kMysql || status.retriable()) return false;
  // Server error numbers shared by MySQL and MariaDB (mysqld_error.h), plus each one's check
  // constraint and JSON errors.
  static constexpr long kDataErrors[] = {
      1005,  // ER_CANT_CREATE_TABLE (too many columns, a row too wide)
      1048,  // ER_BAD_NULL_ERROR
      1062,  // ER_DUP_ENTRY
      1071,  // ER_TOO_LONG_KEY
      1117,  // ER_TOO_MANY_FIELDS
      1118,  // ER_TOO_BIG_ROWSIZE
      1153,  // ER_NET_PACKET_TOO_LARGE: one row over max_allowed_packet
      1264,  // ER_WARN_DATA_OUT_OF_RANGE
      1292,  // ER_TRUNCATED_WRONG_VALUE
      1366,  // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
      1406,  // ER_DATA_TOO_LONG
      1451,  // ER_ROW_IS_REFERENCED_2
      1452,  // ER_NO_REFERENCED_ROW_2
      3140,  // ER_INVALID_JSON_TEXT (MySQL)
      3819,  // ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
      4025,  // ER_CONSTRAINT_FAILED (MariaDB, JSON columns included)
  };
  return std::find(std::begin(kDataErrors), std::end(kDataErrors), status.native_code()) != std::end(kDataErrors);
}

}  // namespace m2m::apply
