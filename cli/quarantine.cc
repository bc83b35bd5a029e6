// mongo2mysql quarantine list|replay|dismiss: the events apply could not apply, and their replay
// from MongoDB's current documents once the cause is fixed (apply/quarantine.h).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "daemon.h"
#include "mysql_flags.h"
#include "quarantine.h"

namespace m2m::cli {
namespace {

struct QuarantineFlags {
  apply::ApplierOptions o;
  apply::QuarantineFilter filter;
  std::string mapping_file;
  std::string mongo_uri;
  bool all = false;
  bool json = false;
  std::string note;
  LogFlags log;
};

std::string Head(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

std::string About(const apply::QuarantineRow& r) {
  if (!r.undecodable.empty()) return "(undecodable: " + Head(r.undecodable, 80) + ")";
  return r.event + " " + r.ns + (r.document_key.empty() ? "" : " " + Head(r.document_key, 80));
}

Result<std::unique_ptr<apply::QuarantineTool>> Open(QuarantineFlags& f) {
  // Logs go to stderr, so stdout is the listing or the report alone.
  M2M_RETURN_NOT_OK(StartLogging(f.log, {{"command", "quarantine"}}, /*to_stderr=*/true));
  ReadMysqlPassword(f.o.mysql);
  if (!f.mapping_file.empty()) {
    M2M_ASSIGN_OR_RETURN(f.o.mapping, LoadMappingFile(f.mapping_file));
  }
  if (!f.mongo_uri.empty()) f.o.mongo = MongoOptions{.uri = f.mongo_uri};
  f.o.group = f.filter.group.empty() ? "mongo2mysql-quarantine" : f.filter.group;
  return apply::QuarantineTool::Make(f.o);
}

// The rows a replay or dismiss names: --id, or every pending row with --all; one that is not there
// (or done already) is an error naming it.
Result<std::vector<apply::QuarantineRow>> Selected(apply::QuarantineTool& tool, QuarantineFlags& f) {
  if (f.all == !f.filter.ids.empty()) return Status::Invalid("name the rows with --id N (repeatable) or give --all");
  M2M_ASSIGN_OR_RETURN(auto rows, tool.List(f.filter));
  for (int64_t id : f.filter.ids) {
    bool found = std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return r.id == id; });
    if (!found) {
      return Status::Invalid("quarantine row " + std::to_string(id) + " is not pending" +
                             (f.filter.group.empty() ? "" : " in group " + f.filter.group) +
                             " (see mongo2mysql quarantine list --done)");
    }
  }
  return rows;
}

Status RunList(QuarantineFlags f) {
  M2M_ASSIGN_OR_RETURN(auto tool, Open(f));
  M2M_ASSIGN_OR_RETURN(auto rows, tool->List(f.filter));
  if (f.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& r : rows) out.push_back(r.ToJson());
    std::printf("%s\n", out.dump(2).c_str());
    return Status::OK();
  }
  for (const auto& r : rows) {
    std::printf("%lld  %s  %s[%d]@%lld  group %s\n    %s\n    error: %s\n", static_cast<long long>(r.id), r.at.c_str(),
                r.topic.c_str(), r.partition, static_cast<long long>(r.offset), r.group.c_str(), About(r).c_str(),
                Head(r.error, 300).c_str());
    if (r.replayed_at) std::printf("    done %s: %s\n", r.replayed_at->c_str(), r.replay.c_str());
  }
  std::printf("%zu %s\n", rows.size(), f.filter.include_done ? "quarantined events" : "quarantined events pending");
  return Status::OK();
}

Status RunReplay(QuarantineFlags f) {
  M2M_ASSIGN_OR_RETURN(auto tool, Open(f));
  M2M_ASSIGN_OR_RETURN(auto rows, Selected(*tool, f));
  int replayed = 0, left = 0;
  for (const auto& r : rows) {
    M2M_ASSIGN_OR_RETURN(apply::ReplayOutcome outcome, tool->Replay(r));
    const bool done = outcome.kind == apply::ReplayOutcome::Kind::kWritten ||
                      outcome.kind == apply::ReplayOutcome::Kind::kDeleted;
    const char* what = done ? "replayed" : outcome.kind == apply::ReplayOutcome::Kind::kFailed ? "failed" : "not replayed";
    std::printf("%lld  %s: %s\n", static_cast<long long>(r.id), what, outcome.detail.c_str());
    (done ? replayed : left)++;
  }
  std::printf("%d replayed, %d left pending\n", replayed, left);
  if (left > 0) return Status(StatusCode::kDiverged, std::to_string(left) + " rows were not replayed (listed above)");
  return Status::OK();
}

Status RunDismiss(QuarantineFlags f) {
  if (f.note.empty()) return Status::Invalid("say with --note how the rows were dealt with (kept in the row)");
  M2M_ASSIGN_OR_RETURN(auto tool, Open(f));
  M2M_ASSIGN_OR_RETURN(auto rows, Selected(*tool, f));
  for (const auto& r : rows) {
    M2M_RETURN_NOT_OK(tool->Dismiss(r, f.note));
    std::printf("%lld  dismissed: %s\n", static_cast<long long>(r.id), About(r).c_str());
  }
  return Status::OK();
}

CLI::App* AddSub(CLI::App* parent, QuarantineFlags& f, const char* name, const char* about, const char* footer) {
  CLI::App* cmd = parent->add_subcommand(name, about);
  cmd->footer(footer);
  AddMysqlOptions(cmd, kQuarantine, f.o.mysql);
  AddSetting(cmd, kQuarantine, "group", f.filter.group);
  AddLogOptions(cmd, kQuarantine, f.log);
  return cmd;
}

}  // namespace

void AddQuarantineCommand(CLI::App& app, Action& action) {
  CLI::App* cmd = app.add_subcommand("quarantine", "List quarantined events; replay them from MongoDB once fixed.");
  cmd->require_subcommand(1);
  cmd->footer(
      "apply writes an event it cannot apply to _m2m_quarantine, with the reason, and goes on: an event\n"
      "that cannot be decoded, a document the mapping refuses, a row MySQL refuses (too large for\n"
      "max_allowed_packet, too wide, a constraint). Fix the cause, then replay. A replay does not apply\n"
      "the old event again, which would put the document back as it was then, over newer changes of it\n"
      "applied since: it reads the document's current state from MongoDB by the event's documentKey and\n"
      "writes it as the snapshot would (the row whole, or no row when the document is gone), marking the\n"
      "quarantine row replayed in the same transaction. Give it the --mapping apply runs with.\n"
      "Collection events (drop, rename) and undecodable events are not replayed: the output says what to\n"
      "do instead; then dismiss them. Details: docs/apply.md, \"Quarantine\".\n"
      "The MySQL password comes from the environment variable M2M_MYSQL_PASSWORD.\n\n"
      "Examples:\n"
      "  mongo2mysql quarantine list --mysql-database shop\n"
      "  mongo2mysql quarantine replay --mysql-database shop --mongo-uri 'mongodb://db1/?replicaSet=rs0' --all\n"
      "  mongo2mysql quarantine dismiss --mysql-database shop --id 7 --note 'orders copied again'");

  // Flags of their own per subcommand: CLI11 reads the environment variables of every subcommand's
  // options, used or not, so shared variables would take M2M_MYSQL_PORT over the command line's.
  auto f = std::make_shared<QuarantineFlags>();
  CLI::App* list = AddSub(cmd, *f, "list", "List quarantined events, oldest first",
                          "Each event: id, when, where it was in Kafka (topic[partition]@offset), its group, what it\n"
                          "is about (event, db.collection, documentKey) and the error. Only pending events unless\n"
                          "--done. Exit status 0, 2 bad usage, 3 MySQL unreachable.");
  AddSetting(list, kQuarantine, "done", f->filter.include_done);
  AddSetting(list, kQuarantine, "json", f->json);
  list->callback([f, &action] { action = [f] { return RunList(*f); }; });

  f = std::make_shared<QuarantineFlags>();
  CLI::App* replay = AddSub(cmd, *f, "replay", "Write the current MongoDB documents of quarantined events",
                            "For each event named (--id) or every pending one (--all): reads its document from\n"
                            "MongoDB now and writes it, or deletes its row when it is gone; the row is then marked\n"
                            "replayed. An event still refused (the cause is not fixed) stays pending with the error.\n"
                            "Exit status 0 when every event named was replayed, 1 when some were not (each is\n"
                            "listed with the reason), 2 bad usage, 3 a server unreachable.");
  AddSetting(replay, kQuarantine, "id", f->filter.ids);
  AddSetting(replay, kQuarantine, "all", f->all);
  AddSetting(replay, kQuarantine, "mongo-uri", f->mongo_uri);
  AddSetting(replay, kQuarantine, "mapping", f->mapping_file)->check(CLI::ExistingFile);
  replay->callback([f, &action] { action = [f] { return RunReplay(*f); }; });

  f = std::make_shared<QuarantineFlags>();
  CLI::App* dismiss = AddSub(cmd, *f, "dismiss", "Mark quarantined events dealt with by hand",
                             "Marks the rows named (--id) or every pending one (--all) as done, with --note, and\n"
                             "writes nothing else: for events a replay cannot handle, once you have.");
  AddSetting(dismiss, kQuarantine, "id", f->filter.ids);
  AddSetting(dismiss, kQuarantine, "all", f->all);
  AddSetting(dismiss, kQuarantine, "note", f->note);
  dismiss->callback([f, &action] { action = [f] { return RunDismiss(*f); }; });
}

}  // namespace m2m::cli
