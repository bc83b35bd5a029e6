// mongo2mysql status: how far capture and apply have come, per collection.
#include <cstdio>
#include <cstdlib>

#include "commands.h"
#include "config_file.h"
#include "daemon.h"
#include "mysql_flags.h"
#include "pipeline_status.h"

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
};

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
      "The MySQL password comes from the environment variable M2M_MYSQL_PASSWORD.\n"
      "Exit status 0 when read, 3 when Kafka or MySQL cannot be reached.\n\n"
      "Example:\n"
      "  mongo2mysql status --kafka-bootstrap broker:9092 --topic-prefix m2m --group shop \\\n"
      "      --mysql-host mysql.internal --mysql-database shop");
  AddConfigOption(cmd, kStatus);
  AddLogOptions(cmd, kStatus, f->log);
  AddSetting(cmd, kStatus, "kafka-bootstrap", f->bootstrap);
  AddSetting(cmd, kStatus, "kafka", f->kafka_props);
  AddSetting(cmd, kStatus, "topic-prefix", o->topic_prefix);
  AddSetting(cmd, kStatus, "group", o->group);
  AddMysqlOptions(cmd, kStatus, f->mysql);
  AddSetting(cmd, kStatus, "interval", f->interval_s);
  AddSetting(cmd, kStatus, "timeout", f->timeout_s);
  AddSetting(cmd, kStatus, "json", f->json);
  cmd->callback([o, f, &action] { action = [o, f] { return RunStatus(*o, *f); }; });
}

}  // namespace m2m::cli
