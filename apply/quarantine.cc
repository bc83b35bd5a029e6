#include "quarantine.h"

#include <spdlog/spdlog.h>

#include "document_lookup.h"
#include "m2m/event_codec.h"
#include "m2m/identifiers.h"

namespace m2m::apply {
namespace {

std::string Filter(const QuarantineFilter& f) {
  std::string sql = " WHERE 1";
  if (!f.group.empty()) sql += " AND group_id=" + QuoteString(f.group);
  if (!f.include_done) sql += " AND replayed_at IS NULL";
  if (!f.ids.empty()) {
    sql += " AND id IN (";
    for (size_t i = 0; i < f.ids.size(); ++i) sql += (i ? "," : "") + std::to_string(f.ids[i]);
    sql += ")";
  }
  return sql;
}

std::string MarkSql(int64_t id, const std::string& replay) {
  return std::string("UPDATE ") + kQuarantineTable + " SET replayed_at=UTC_TIMESTAMP(3), replay=" +
         QuoteString(replay) + " WHERE id=" + std::to_string(id);
}

}  // namespace

struct QuarantineTool::Impl {
  ApplierOptions o;
  std::unique_ptr<MysqlConnection> mysql;
  std::unique_ptr<Applier> applier;
  std::unique_ptr<DocumentLookup> lookup;
  ApplyStats stats;

  // The row's raw event: raw_event, or its parts joined when it was too large for one statement.
  Result<std::pair<std::optional<std::string>, std::optional<std::string>>> Raw(int64_t id) {
    M2M_ASSIGN_OR_RETURN(auto rows, mysql->Query(std::string("SELECT msg_key, raw_event FROM ") + kQuarantineTable +
                                                 " WHERE id=" + std::to_string(id)));
    if (rows.empty()) return Status::Invalid("quarantine row " + std::to_string(id) + " does not exist");
    std::optional<std::string> key = rows[0].at(0), value = rows[0].at(1);
    if (!value) {
      // One part per query: a value over max_allowed_packet cannot be built on the server.
      M2M_ASSIGN_OR_RETURN(auto count, mysql->Query(std::string("SELECT COUNT(*) FROM ") + kQuarantinePartsTable +
                                                    " WHERE quarantine_id=" + std::to_string(id)));
      int64_t parts = std::stoll(count.at(0).at(0).value_or("0"));
      if (parts > 0) value.emplace();
      for (int64_t part = 0; part < parts; ++part) {
        M2M_ASSIGN_OR_RETURN(auto bytes,
                             mysql->Query(std::string("SELECT bytes FROM ") + kQuarantinePartsTable +
                                          " WHERE quarantine_id=" + std::to_string(id) +
                                          " AND part=" + std::to_string(part)));
        if (bytes.empty() || !bytes[0].at(0)) {
          return Status::Invalid("quarantine row " + std::to_string(id) + ": part " + std::to_string(part) +
                                 " of its raw event is missing from " + kQuarantinePartsTable);
        }
        *value += *bytes[0].at(0);
      }
    }
    return std::make_pair(std::move(key), std::move(value));
  }

  // The row's event, decoded: none with `*error` set when it cannot be.
  Result<std::optional<ChangeEvent>> Event(int64_t id, std::string* error) {
    M2M_ASSIGN_OR_RETURN(auto raw, Raw(id));
    if (!raw.second) {
      *error = "the raw event is empty";
      return std::optional<ChangeEvent>();
    }
    auto decoded = DecodeEvent(raw.first, raw.second);
    if (!decoded.ok()) {
      *error = decoded.status().message();
      return std::optional<ChangeEvent>();
    }
    if (!*decoded) *error = "the raw event is a tombstone";
    return std::move(*decoded);
  }
};

QuarantineTool::QuarantineTool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QuarantineTool::~QuarantineTool() = default;

Result<std::unique_ptr<QuarantineTool>> QuarantineTool::Make(ApplierOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  auto impl = std::make_unique<Impl>();
  impl->o = std::move(options);
  M2M_ASSIGN_OR_RETURN(impl->mysql, MysqlConnection::Connect(impl->o.mysql));
  M2M_ASSIGN_OR_RETURN(auto tables, impl->mysql->Query(std::string("SELECT COUNT(*) FROM information_schema.TABLES "
                                                                   "WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME='") +
                                                       kQuarantineTable + "'"));
  if (tables.empty() || tables[0].at(0).value_or("0") == "0") {
    return Status::Invalid("database " + impl->o.mysql.database + " has no " + kQuarantineTable +
                           ": apply never wrote to it (is --mysql-database the one apply writes?)");
  }
  if (impl->o.mongo) {
    M2M_ASSIGN_OR_RETURN(impl->lookup, DocumentLookup::Connect(*impl->o.mongo));
  }
  ApplierOptions writer = impl->o;
  writer.mongo.reset();  // the replay reads the documents itself
  M2M_ASSIGN_OR_RETURN(impl->applier, Applier::Make(std::move(writer), &impl->stats));
  M2M_RETURN_NOT_OK(impl->applier->Connect());  // also adds the columns an older quarantine table lacks
  return std::unique_ptr<QuarantineTool>(new QuarantineTool(std::move(impl)));
}

Result<std::vector<QuarantineRow>> QuarantineTool::List(const QuarantineFilter& filter) {
  M2M_ASSIGN_OR_RETURN(auto rows,
                       impl_->mysql->Query(std::string("SELECT id, group_id, topic, `partition`, `offset`, error, "
                                                       "DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), "
                                                       "DATE_FORMAT(replayed_at, '%Y-%m-%d %H:%i:%s.%f'), replay FROM ") +
                                           kQuarantineTable + Filter(filter) + " ORDER BY id"));
  std::vector<QuarantineRow> out;
  for (const auto& r : rows) {
    QuarantineRow q;
    q.id = std::stoll(r.at(0).value());
    q.group = r.at(1).value_or("");
    q.topic = r.at(2).value_or("");
    q.partition = std::stoi(r.at(3).value());
    q.offset = std::stoll(r.at(4).value());
    q.error = r.at(5).value_or("");
    q.at = r.at(6).value_or("").substr(0, 23);  // milliseconds
    if (r.at(7)) q.replayed_at = r.at(7)->substr(0, 23);
    q.replay = r.at(8).value_or("");
    M2M_ASSIGN_OR_RETURN(auto event, impl_->Event(q.id, &q.undecodable));
    if (event) {
      q.event = std::string(EventKindName(event->kind));
      q.ns = event->db + (event->collection.empty() ? "" : "." + event->collection);
      if (!event->document_key.empty()) q.document_key = event->document_key.ToRelaxedJson();
    }
    out.push_back(std::move(q));
  }
  return out;
}

Result<QuarantinedRecord> QuarantineTool::Record(int64_t id) {
  M2M_ASSIGN_OR_RETURN(auto raw, impl_->Raw(id));
  QuarantinedRecord out{raw.first, raw.second, ""};
  std::string undecodable;
  M2M_ASSIGN_OR_RETURN(auto event, impl_->Event(id, &undecodable));
  if (event && event->after) out.document = event->after->ToRelaxedJson();
  return out;
}

nlohmann::ordered_json QuarantineRow::ToJson() const {
  using json = nlohmann::ordered_json;
  return {{"id", id}, {"group", group}, {"topic", topic}, {"partition", partition}, {"offset", offset}, {"at", at},
          {"event", event}, {"namespace", ns}, {"document_key", document_key}, {"undecodable", undecodable},
          {"error", error}, {"replayed_at", replayed_at ? json(*replayed_at) : json(nullptr)}, {"replay", replay}};
}

Result<ReplayOutcome> QuarantineTool::Replay(const QuarantineRow& row) {
  using Kind = ReplayOutcome::Kind;
  if (row.replayed_at) return ReplayOutcome{Kind::kNotReplayed, "dealt with already at " + *row.replayed_at + ": " + row.replay};
  if (!impl_->lookup) return Status::Invalid("a replay reads the documents from MongoDB: give --mongo-uri");
  std::string undecodable;
  M2M_ASSIGN_OR_RETURN(auto event, impl_->Event(row.id, &undecodable));
  if (!event) {
    return ReplayOutcome{Kind::kNotReplayed,
                         "its event cannot be decoded (" + undecodable +
                             "), so it names no document to read again; fix what produced it, then dismiss it"};
  }
  if (event->document_key.empty()) {
    return ReplayOutcome{Kind::kNotReplayed,
                         "a " + std::string(EventKindName(event->kind)) + " of " + row.ns +
                             " concerns the whole collection and is not replayed document by document; copy the "
                             "collection again (mongo2mysql capture ... --resnapshot), then dismiss it"};
  }
  M2M_ASSIGN_OR_RETURN(auto doc, impl_->lookup->Find(event->db, event->collection, event->document_key));
  std::string label = event->db + "." + event->collection + " " + event->document_key.ToRelaxedJson();
  std::string replay = doc ? "written from MongoDB's current document" : "deleted: the document is gone from MongoDB";
  Status st = impl_->applier->WriteCurrentState(event->db, event->collection, event->document_key, doc,
                                                {MarkSql(row.id, replay)});
  if (!st.ok()) {
    if (!IsEventError(st)) return st.WithContext("replaying quarantine row " + std::to_string(row.id));
    return ReplayOutcome{Kind::kFailed, label + ": " + st.message()};
  }
  spdlog::info("quarantine row {} ({}@{}): {}: {}", row.id, PartitionName({row.topic, row.partition}), row.offset,
               label, replay);
  return ReplayOutcome{doc ? Kind::kWritten : Kind::kDeleted, label + ": " + replay};
}

Status QuarantineTool::Dismiss(const QuarantineRow& row, const std::string& note) {
  return impl_->mysql->Execute(MarkSql(row.id, "dismissed: " + note));
}

}  // namespace m2m::apply
