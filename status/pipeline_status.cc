#include "pipeline_status.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <thread>

#include "bookkeeping.h"
#include "capture.h"
#include "m2m/identifiers.h"
#include "m2m/table_schema.h"

namespace m2m::status {
namespace {

using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What is read twice, for throughput: capture's checkpoints and apply's running counts.
struct Sample {
  std::map<std::string, std::string> checkpoints;  // the checkpoint topic, key to value
  std::map<std::string, int64_t> applied;          // per topic
  std::chrono::steady_clock::time_point at;
};

// One row of _m2m_offsets of the group.
struct Stored {
  int64_t next_offset = 0;
  int64_t applied_events = 0;
  int64_t last_event_ms = 0;
};

struct Reader {
  const StatusOptions& o;
  std::unique_ptr<KafkaInspector> kafka;
  std::vector<std::string> topics;
  std::unique_ptr<MysqlConnection> mysql;
  bool has_offsets_table = false;
  bool has_counts = false;  // _m2m_offsets has applied_events and last_event_ms (apply of this version ran)

  std::string Where() const { return "Kafka at " + o.kafka.at("bootstrap.servers"); }

  Status Connect() {
    M2M_ASSIGN_OR_RETURN(kafka, KafkaInspector::Make(o.kafka, o.timeout));
    auto listed = kafka->ListTopics();
    if (!listed.ok()) return listed.status().WithContext("cannot reach " + Where());
    topics = std::move(*listed);
    std::sort(topics.begin(), topics.end());
    if (!o.mysql) return Status::OK();
    MysqlOptions server = *o.mysql;
    server.database.clear();
    server.timeout_seconds = static_cast<unsigned>(std::max<int64_t>(o.timeout.count() / 1000, 1));
    M2M_ASSIGN_OR_RETURN(mysql, MysqlConnection::Connect(server));
    M2M_ASSIGN_OR_RETURN(auto columns,
                         mysql->Query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = " +
                                      QuoteString(o.mysql->database) + " AND TABLE_NAME = '" +
                                      apply::kOffsetsTable + "'"));
    has_offsets_table = !columns.empty();
    has_counts = std::any_of(columns.begin(), columns.end(),
                             [](const auto& row) { return row.at(0).value_or("") == "applied_events"; });
    return Status::OK();
  }

  bool Exists(const std::string& topic) const { return std::binary_search(topics.begin(), topics.end(), topic); }

  std::string Table(const char* name) const { return QuoteIdentifier(o.mysql->database) + "." + name; }

  Result<std::map<apply::PartitionId, Stored>> ReadOffsets() {
    std::map<apply::PartitionId, Stored> out;
    if (!has_offsets_table) return out;
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(std::string("SELECT topic, `partition`, next_offset, ") +
                                                 (has_counts ? "applied_events, last_event_ms" : "0, NULL") +
                                                 " FROM " + Table(apply::kOffsetsTable) +
                                                 " WHERE group_id = " + QuoteString(o.group)));
    for (const auto& r : rows) {
      out[{r.at(0).value(), std::stoi(r.at(1).value())}] = {std::stoll(r.at(2).value()), std::stoll(r.at(3).value()),
                                                            r.at(4) ? std::stoll(*r.at(4)) : 0};
    }
    return out;
  }

  Result<Sample> TakeSample() {
    Sample s;
    std::string checkpoints = o.topic_prefix + ".__checkpoints";
    if (Exists(checkpoints)) {
      auto read = ReadTopicToEnd(o.kafka, checkpoints, o.timeout);
      if (!read.ok()) return read.status().WithContext("reading " + checkpoints + " from " + Where());
      s.checkpoints = std::move(*read);
    }
    if (mysql) {
      M2M_ASSIGN_OR_RETURN(auto offsets, ReadOffsets());
      for (const auto& [tp, stored] : offsets) s.applied[tp.first] += stored.applied_events;
    }
    s.at = std::chrono::steady_clock::now();
    return s;
  }

  Result<std::map<std::string, int64_t>> QuarantineCounts() {
    std::map<std::string, int64_t> out;
    M2M_ASSIGN_OR_RETURN(auto exists, mysql->Query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = " +
                                                   QuoteString(o.mysql->database) + " AND TABLE_NAME = '" +
                                                   apply::kQuarantineTable + "'"));
    if (exists.empty()) return out;
    // Pending ones: `mongo2mysql quarantine` marks what it replayed or dismissed (a table of an apply
    // before it has no such column).
    M2M_ASSIGN_OR_RETURN(auto marked, mysql->Query("SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = " +
                                                   QuoteString(o.mysql->database) + " AND TABLE_NAME = '" +
                                                   apply::kQuarantineTable + "' AND COLUMN_NAME = 'replayed_at'"));
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query("SELECT topic, COUNT(*) FROM " + Table(apply::kQuarantineTable) +
                                                 " WHERE group_id = " + QuoteString(o.group) +
                                                 (marked.empty() ? "" : " AND replayed_at IS NULL") + " GROUP BY topic"));
    for (const auto& r : rows) out[r.at(0).value()] = std::stoll(r.at(1).value());
    return out;
  }

  // The collection a topic carries: a snapshot names it, else the topic name when TopicFor gives it back.
  std::string CollectionOf(const std::string& topic) const {
    std::string rest = topic.substr(o.topic_prefix.size() + 1);
    size_t dot = rest.find('.');
    if (dot == std::string::npos) return "";
    std::string db = rest.substr(0, dot), collection = rest.substr(dot + 1);
    return capture::TopicFor(o.topic_prefix, db, collection) == topic ? db + "." + collection : "";
  }

  // The collection's part of Kafka and of apply's progress.
  Status ReadTopic(CollectionProgress& c, const std::map<apply::PartitionId, Stored>& offsets, int64_t now_ms) {
    auto ends = kafka->Ends(c.topic);
    if (!ends.ok()) return ends.status().WithContext("reading " + c.topic + " from " + Where());
    c.partitions = static_cast<int>(ends->size());
    int64_t oldest_waiting_ms = 0;
    for (const TopicPartition& end : *ends) {
      c.end_offset += end.offset;
      M2M_ASSIGN_OR_RETURN(auto last, kafka->LastRecord(c.topic, end.partition, end.offset));
      if (last) c.last_captured_ms = std::max(c.last_captured_ms, last->timestamp_ms);
      if (!mysql) continue;
      auto stored = offsets.find({c.topic, end.partition});
      TopicPartition from{c.topic, end.partition, 0};
      if (stored != offsets.end()) {
        from.offset = stored->second.next_offset;
        c.applied_events += stored->second.applied_events;
        c.last_applied_ms = std::max(c.last_applied_ms, stored->second.last_event_ms);
      }
      M2M_ASSIGN_OR_RETURN(auto first, kafka->FirstRecord(from, end.offset));
      if (!first) continue;
      c.lag_events += end.offset - first->offset;
      if (oldest_waiting_ms == 0 || first->timestamp_ms < oldest_waiting_ms) oldest_waiting_ms = first->timestamp_ms;
    }
    if (oldest_waiting_ms > 0) c.lag_seconds = std::max<double>(now_ms - oldest_waiting_ms, 0) / 1000.0;
    return Status::OK();
  }
};

std::optional<double> Rate(int64_t before, int64_t after, double seconds) {
  if (seconds <= 0 || after < before) return std::nullopt;  // a restarted capture counts from 0 again
  return (after - before) / seconds;
}

void ReadCaptures(const Sample& first, const Sample& second, double seconds, PipelineStatus& out) {
  const std::string stream = "stream/";
  for (const auto& [key, value] : second.checkpoints) {
    if (key.rfind(stream, 0) != 0) continue;
    json j = json::parse(value, nullptr, false);
    if (!j.is_object()) continue;
    CaptureProgress c;
    c.name = key.substr(stream.size());
    c.scope = j.value("scope", "");
    c.snapshot_done = j.value("snapshot", "") == "done";
    c.checkpoint_ms = j.value("committed_at_ms", int64_t{0});
    c.last_event_s = j.value("last_event_s", int64_t{0});
    auto before = first.checkpoints.find(key);
    if (before != first.checkpoints.end()) {
      json b = json::parse(before->second, nullptr, false);
      if (b.is_object()) c.events_per_s = Rate(b.value("events", int64_t{0}), j.value("events", int64_t{0}), seconds);
    }
    out.captures.push_back(std::move(c));
  }
}

std::string Time(int64_t ms) {
  if (ms <= 0) return "-";
  time_t secs = static_cast<time_t>(ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &t);
  return buf;
}

std::string Fixed(double v, int decimals) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t i = 0; i < row.size(); ++i) line += " " + row[i] + std::string(width[i] - row[i].size() + 1, ' ');
    out += line.substr(0, line.find_last_not_of(' ') + 1) + "\n";
  }
  return out;
}

}  // namespace

Status StatusOptions::Validate() const {
  if (kafka.find("bootstrap.servers") == kafka.end()) return Status::Invalid("kafka.bootstrap.servers is not set");
  if (topic_prefix.empty()) return Status::Invalid("topic prefix is empty");
  if (mysql) {
    M2M_RETURN_NOT_OK(mysql->Validate());
    if (mysql->database.empty()) return Status::Invalid("mysql.database is required to report apply");
  }
  if (group.empty()) return Status::Invalid("group is empty");
  if (interval.count() < 0) return Status::Invalid("interval must not be negative");
  if (timeout.count() <= 0) return Status::Invalid("timeout must be positive");
  return Status::OK();
}

Result<PipelineStatus> ReadPipelineStatus(const StatusOptions& o) {
  M2M_RETURN_NOT_OK(o.Validate());
  Reader r{o};
  M2M_RETURN_NOT_OK(r.Connect());
  M2M_ASSIGN_OR_RETURN(Sample first, r.TakeSample());

  PipelineStatus out;
  out.at_ms = NowMs();
  out.topic_prefix = o.topic_prefix;
  out.group = o.group;
  if (o.mysql) out.database = o.mysql->database;

  std::map<std::string, CollectionProgress> collections;  // by topic
  std::string prefix = o.topic_prefix + ".";
  for (const std::string& topic : r.topics) {
    if (topic.rfind(prefix, 0) != 0 || topic.compare(prefix.size(), 2, "__") == 0) continue;
    collections[topic].topic = topic;
    collections[topic].collection = r.CollectionOf(topic);
  }
  const std::string snapshot = "snapshot/";
  for (const auto& [key, value] : first.checkpoints) {
    if (key.rfind(snapshot, 0) != 0) continue;
    auto plan = capture::CollectionSnapshot::FromJson(value);
    if (!plan.ok()) continue;
    std::string topic = capture::TopicFor(o.topic_prefix, plan->ns.db, plan->ns.collection);
    CollectionProgress& c = collections[topic];  // an empty collection's topic is never created
    c.topic = topic;
    c.collection = plan->ns.db + "." + plan->ns.collection;
    SnapshotProgress s;
    s.capture = key.substr(snapshot.size(), key.find('/', snapshot.size()) - snapshot.size());
    s.documents = plan->documents;
    s.copied = plan->copied;
    s.chunks = static_cast<int64_t>(plan->done.size());
    s.chunks_done = plan->chunks_done();
    c.snapshot = s;
  }

  std::map<apply::PartitionId, Stored> offsets;
  std::map<std::string, int64_t> quarantined;
  Catalog catalog;
  if (r.mysql) {
    M2M_ASSIGN_OR_RETURN(offsets, r.ReadOffsets());
    M2M_ASSIGN_OR_RETURN(quarantined, r.QuarantineCounts());
    M2M_ASSIGN_OR_RETURN(auto schema, r.mysql->Query(InformationSchemaQuery(o.mysql->database)));
    M2M_ASSIGN_OR_RETURN(catalog, CatalogFromInformationSchema(schema));
  }
  for (auto& [topic, c] : collections) {
    if (r.Exists(topic)) M2M_RETURN_NOT_OK(r.ReadTopic(c, offsets, out.at_ms));
    c.quarantined = quarantined[topic];
    if (!c.collection.empty()) {
      for (const TableSchema* t : catalog.CollectionTables(c.collection.substr(c.collection.find('.') + 1))) {
        c.tables.push_back(t->name);
      }
    }
  }

  Sample second = first;
  double seconds = 0;
  if (o.interval.count() > 0) {
    std::this_thread::sleep_until(first.at + o.interval);
    M2M_ASSIGN_OR_RETURN(second, r.TakeSample());
    seconds = std::chrono::duration<double>(second.at - first.at).count();
    for (auto& [topic, c] : collections) {
      if (r.mysql) c.applied_per_s = Rate(first.applied[topic], second.applied[topic], seconds);
    }
  }
  ReadCaptures(first, second, seconds, out);
  for (auto& [topic, c] : collections) out.collections.push_back(std::move(c));
  return out;
}

json PipelineStatus::ToJson() const {
  auto optional = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json j = {{"at_ms", at_ms}, {"topic_prefix", topic_prefix}, {"group", group},
            {"database", database ? json(*database) : json(nullptr)}};
  j["captures"] = json::array();
  for (const CaptureProgress& c : captures) {
    j["captures"].push_back({{"name", c.name},
                             {"scope", c.scope},
                             {"snapshot_done", c.snapshot_done},
                             {"checkpoint_ms", c.checkpoint_ms},
                             {"last_event_ms", c.last_event_s * 1000},
                             {"events_per_s", optional(c.events_per_s)}});
  }
  j["collections"] = json::array();
  for (const CollectionProgress& c : collections) {
    json s = nullptr;
    if (c.snapshot) {
      s = {{"capture", c.snapshot->capture}, {"documents", c.snapshot->documents}, {"copied", c.snapshot->copied},
           {"chunks", c.snapshot->chunks}, {"chunks_done", c.snapshot->chunks_done},
           {"complete", c.snapshot->complete()}};
    }
    j["collections"].push_back({{"topic", c.topic},
                                {"collection", c.collection},
                                {"tables", c.tables},
                                {"partitions", c.partitions},
                                {"end_offset", c.end_offset},
                                {"last_captured_ms", c.last_captured_ms},
                                {"snapshot", s},
                                {"applied_events", c.applied_events},
                                {"last_applied_ms", c.last_applied_ms},
                                {"lag_events", c.lag_events},
                                {"lag_seconds", c.lag_seconds},
                                {"applied_per_s", optional(c.applied_per_s)},
                                {"quarantined", c.quarantined}});
  }
  return j;
}

std::string PipelineStatus::ToText() const {
  auto rate = [](const std::optional<double>& v) { return v ? Fixed(*v, 1) : std::string("-"); };
  std::string out = "Captures (checkpoints in " + topic_prefix + ".__checkpoints)\n";
  std::vector<std::vector<std::string>> rows = {{"NAME", "SCOPE", "SNAPSHOT", "LAST EVENT", "CHECKPOINT", "EVENTS/S"}};
  for (const CaptureProgress& c : captures) {
    rows.push_back({c.name, c.scope, c.snapshot_done ? "done" : "running", Time(c.last_event_s * 1000),
                    c.checkpoint_ms ? Fixed((at_ms - c.checkpoint_ms) / 1000.0, 0) + " s ago" : "-",
                    rate(c.events_per_s)});
  }
  out += captures.empty() ? "  none\n" : Table(rows);
  out += "\nCollections (topics " + topic_prefix + ".*";
  out += database ? ", apply group " + group + " into MySQL database " + *database + ")\n" : ")\n";
  rows = {{"COLLECTION", "TABLES", "SNAPSHOT", "LAST CAPTURED", "LAST APPLIED", "LAG EVENTS", "LAG S", "APPLIED",
           "APPLIED/S", "QUARANTINED"}};
  for (const CollectionProgress& c : collections) {
    std::string tables;
    for (const std::string& t : c.tables) tables += (tables.empty() ? "" : ",") + t;
    std::string snapshot = "-";
    if (c.snapshot) {
      snapshot = c.snapshot->complete() ? "done" : std::to_string(c.snapshot->copied) + "/" +
                                                       std::to_string(c.snapshot->documents) + " docs";
    }
    bool apply = database.has_value();
    rows.push_back({c.collection.empty() ? c.topic : c.collection, tables.empty() ? "-" : tables, snapshot,
                    Time(c.last_captured_ms), apply ? Time(c.last_applied_ms) : "-",
                    apply ? std::to_string(c.lag_events) : "-", apply ? Fixed(c.lag_seconds, 1) : "-",
                    apply ? std::to_string(c.applied_events) : "-", rate(c.applied_per_s),
                    apply ? std::to_string(c.quarantined) : "-"});
  }
  out += collections.empty() ? "  none\n" : Table(rows);
  return out;
}

}  // namespace m2m::status
