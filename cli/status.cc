// mongo2mysql status: how far capture and apply have come, per collection.
#include <cstdio>
#include <cstdlib>

#include "commands.h"
#include "config_file.h"
#include "daemon.h"
#include "mysql_flags.h"
#include "pipeline_status.h"
#include "status_page.h"

namespace m2m::cli {
namespace {

struct StatusFlags {
  std::vector<std::string> kafka_props;
  std::string bootstrap;
  MysqlOptions mysql;
  double interval_s = 0;
  double timeout_s = 0;
  bool json = false;
  LogFlags log;
  // --serve: the status page (status_page.h) instead of printing once.
  bool serve = false;
  std::string serve_host = status::StatusPageOptions{}.host;
  int serve_port = status::StatusPageOptions{}.port;
  double history_min = std::chrono::duration<double, std::ratio<60>>(status::StatusPageOptions{}.history).count();
  std::string mongo_uri;
  std::string mapping_file;
};

Status Serve(status::StatusOptions o, const StatusFlags& f) {
  status::StatusPageOptions page;
  page.status = std::move(o);
  page.host = f.serve_host;
  page.port = f.serve_port;
  page.history = std::chrono::milliseconds(static_cast<int64_t>(f.history_min * 60000));
  if (!f.mongo_uri.empty()) page.mongo = MongoOptions{.uri = f.mongo_uri};
  if (!f.mapping_file.empty()) {
    M2M_ASSIGN_OR_RETURN(page.mapping, LoadMappingFile(f.mapping_file));
  }
  InstallStopSignals();
  M2M_ASSIGN_OR_RETURN(auto server, status::StatusPage::Start(std::move(page)));
  std::fprintf(stderr, "status page at http://%s:%d/\n", f.serve_host.c_str(), server->port());
  detail::SetStopTarget(server.get(), [](void* s) { static_cast<status::StatusPage*>(s)->RequestStop(); });
  Status st = server->Run();
  detail::SetStopTarget(nullptr, nullptr);
  return st;
}

Status RunStatus(status::StatusOptions o, StatusFlags f) {
  M2M_RETURN_NOT_OK(StartLogging(f.log, {{"command", "status"}}, /*to_stderr=*/true));
  o.kafka["bootstrap.servers"] = f.bootstrap;
  M2M_RETURN_NOT_OK(AddKafkaProperties(f.kafka_props, o.kafka));
  if (!f.mysql.database.empty()) {
    ReadMysqlPassword(f.mysql);
    o.mysql = f.mysql;
  }
  o.interval = std::chrono::milliseconds(static_cast<int64_t>(f.interval_s * 1000));
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(f.timeout_s * 1000));
  if (f.serve) return Serve(std::move(o), f);
  M2M_ASSIGN_OR_RETURN(status::PipelineStatus st, status::ReadPipelineStatus(o));
  std::string text = f.json ? st.ToJson().dump(2) + "\n" : st.ToText();
  std::fputs(text.c_str(), stdout);
  return Status::OK();
}

}  // namespace

void AddStatusCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<status::StatusOptions>();
  auto f = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand("status", "Show how far capture and apply have come, per collection.");
  cmd->footer(
      "Reads the pipeline's own state, so it works whether capture and apply run or not: the captures'\n"
      "checkpoints (last event, snapshot progress) in <topic-prefix>.__checkpoints, the ends of the\n"
      "collection topics in Kafka and, with --mysql-database, apply's _m2m_offsets and _m2m_quarantine\n"
      "of --group. Per collection: its tables, snapshot progress, the time of the last event captured\n"
      "and applied, the lag in events (records after the last one applied; Kafka's commit markers\n"
      "count, so it is an upper bound, exact at 0) and in seconds (how long the oldest event not yet\n"
      "applied has waited), applied events and events/s (two samples --interval seconds apart) and\n"
      "quarantined events. --json prints the same for programs. Details: docs/operations.md.\n"
      "--serve serves the same as a web page instead, until stopped: charts of the last --history\n"
      "minutes (a sample every --interval seconds), and apply's quarantined events with their reason\n"
      "and document; with --mongo-uri a button retries one as 'quarantine replay' does (from this\n"
      "machine only). Details: docs/status.md.\n"
      "The MySQL password comes from the environment variable M2M_MYSQL_PASSWORD.\n"
      "Exit status 0 when read, 3 when Kafka or MySQL cannot be reached.\n\n"
      "Example:\n"
      "  mongo2mysql status --kafka-bootstrap broker:9092 --topic-prefix m2m --group shop \\\n"
      "      --mysql-host mysql.internal --mysql-database shop\n"
      "  mongo2mysql status --serve --group shop --mysql-database shop --mongo-uri mongodb://db1/ \\\n"
      "      --mapping shop.yaml      # then open http://127.0.0.1:9189/");
  AddConfigOption(cmd, kStatus);
  AddLogOptions(cmd, kStatus, f->log);
  AddSetting(cmd, kStatus, "kafka-bootstrap", f->bootstrap);
  AddSetting(cmd, kStatus, "kafka", f->kafka_props);
  AddSetting(cmd, kStatus, "topic-prefix", o->topic_prefix);
  AddSetting(cmd, kStatus, "group", o->group);
  AddMysqlOptions(cmd, kStatus, f->mysql);
  AddSetting(cmd, kStatus, "interval", f->interval_s);
  AddSetting(cmd, kStatus, "timeout", f->timeout_s);
  CLI::Option* json = AddSetting(cmd, kStatus, "json", f->json);
  // The status page (docs/status.md).
  AddSetting(cmd, kStatus, "serve", f->serve)->excludes(json)->group("Status page");
  AddSetting(cmd, kStatus, "serve-host", f->serve_host)->group("Status page");
  AddSetting(cmd, kStatus, "serve-port", f->serve_port)->group("Status page");
  AddSetting(cmd, kStatus, "history", f->history_min)->check(CLI::PositiveNumber)->group("Status page");
  AddSetting(cmd, kStatus, "mongo-uri", f->mongo_uri)->group("Status page");
  AddSetting(cmd, kStatus, "mapping", f->mapping_file)->check(CLI::ExistingFile)->group("Status page");
  cmd->callback([o, f, &action] { action = [o, f] { return RunStatus(*o, *f); }; });
}

}  // namespace m2m::cli
