// mongo2mysql apply: Kafka change events into MySQL, exactly once.

#include <fmt/format.h>

#include "apply.h"
#include "commands.h"
#include "config_file.h"
#include "daemon.h"
#include "mysql_flags.h"

namespace m2m::cli {
namespace {

struct ApplyFlags {
  std::vector<std::string> kafka_props;
  std::string bootstrap;
  std::string topics;
  std::string mapping_file;
  std::string mongo_uri;
  int batch_ms = 0;
  int retry_for_s = 0;
  std::string on_drop;
  std::string on_rename;
  bool no_instant = false;
  MetricsFlags metrics;
  LogFlags log;
};

std::string ServiceStatus(const apply::ApplyStats& s) {
  return fmt::format("applying: {} events in {} batches, {} quarantined, {} retries, lag {} events", s.events.load(),
                     s.batches.load(), s.quarantined.load(), s.retries.load(), s.lag_events.load());
}

Status RunApply(apply::ApplyOptions o, const ApplyFlags& f) {
  M2M_RETURN_NOT_OK(StartLogging(f.log, {{"command", "apply"}, {"group", o.group}}));
  o.kafka["bootstrap.servers"] = f.bootstrap;
  M2M_RETURN_NOT_OK(AddKafkaProperties(f.kafka_props, o.kafka));
  for (size_t start = 0; start < f.topics.size();) {
    size_t comma = std::min(f.topics.find(',', start), f.topics.size());
    if (comma > start) o.topics.push_back(f.topics.substr(start, comma - start));
    start = comma + 1;
  }
  ReadMysqlPassword(o.mysql);
  if (!f.mapping_file.empty()) {
    M2M_ASSIGN_OR_RETURN(o.mapping, LoadMappingFile(f.mapping_file));
  }
  if (!f.on_drop.empty()) o.mapping.options.on_drop = f.on_drop == "drop" ? DropPolicy::kDrop : DropPolicy::kKeep;
  if (!f.on_rename.empty()) {
    o.mapping.options.on_rename = f.on_rename == "keep" ? RenamePolicy::kKeep : RenamePolicy::kRename;
  }
  if (!f.mongo_uri.empty()) o.mongo = MongoOptions{.uri = f.mongo_uri};
  o.max_batch_time = std::chrono::milliseconds(f.batch_ms);
  o.retry_for = std::chrono::seconds(f.retry_for_s);
  o.sql.instant_add_column = !f.no_instant;
  InstallStopSignals();
  MetricLabels labels = {{"group", o.group}};
  return RunDaemon(apply::Apply::Make(std::move(o)), f.metrics, std::move(labels), ServiceStatus);
}

}  // namespace

void AddApplyCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<apply::ApplyOptions>();
  auto f = std::make_shared<ApplyFlags>();
  CLI::App* cmd = app.add_subcommand("apply", "Apply change events from Kafka to MySQL, exactly once.");
  cmd->footer(
      "Consumes the topics capture writes (or a Debezium MongoDB connector's, JSON without schemas) as a\n"
      "member of consumer group --group and keeps the tables of --mysql-database in step, mapped as\n"
      "docs/mapping.md says. Each batch is one MySQL transaction that also stores the next Kafka offset\n"
      "of every partition in _m2m_offsets; on start and on every rebalance apply continues from there,\n"
      "so after a crash or kill -9 every event is applied exactly once. Run several apply processes\n"
      "with the same --group to share the partitions. Events that cannot be applied (undecodable,\n"
      "unmappable, refused by MySQL) go to _m2m_quarantine with the reason, and apply keeps going\n"
      "('mongo2mysql quarantine' lists them and, once fixed, replays them from MongoDB's documents).\n"
      "MySQL, Kafka or MongoDB unreachable or restarting: apply logs what it waits for and tries again\n"
      "(0.5 s, doubling up to 30 s) for --retry-for seconds, then exits with status 3. A partition whose\n"
      "stored offset Kafka no longer holds (retention deleted events apply had not read, or the topic was\n"
      "created again) stops apply with an error naming the gap and the ways out (docs/apply.md).\n"
      "Records of any size capture writes are fetched. A row larger than the server's\n"
      "max_allowed_packet (MySQL 8: 64 MiB by default, MariaDB: 16 MiB; at most 1 GiB) is not sent: its\n"
      "event is quarantined with an error naming the document and the setting to raise, its raw\n"
      "bytes in _m2m_quarantine_parts when they do not fit in one statement either.\n"
      "The MySQL password comes from the environment variable M2M_MYSQL_PASSWORD, never from argv;\n"
      "Kafka secrets (sasl.password, ...) only from a --config file, e.g. as ${KAFKA_PASSWORD}.\n"
      "Stop with Ctrl-C or SIGTERM; the batch in flight is committed first. Details: docs/apply.md.\n\n"
      "Examples:\n"
      "  M2M_MYSQL_PASSWORD=... mongo2mysql apply --topic-pattern 'm2m\\.shop\\..*' --group shop \\\n"
      "      --mysql-host mysql.internal --mysql-database shop --mongo-uri 'mongodb://db1/?replicaSet=rs0'\n"
      "  mongo2mysql apply --topics m2m.shop.orders --group backfill --mysql-database shop --until-caught-up");
  AddConfigOption(cmd, kApply);
  AddLogOptions(cmd, kApply, f->log);
  AddSetting(cmd, kApply, "kafka-bootstrap", f->bootstrap);
  AddSetting(cmd, kApply, "kafka", f->kafka_props);
  AddSetting(cmd, kApply, "topics", f->topics);
  AddSetting(cmd, kApply, "topic-pattern", o->topic_pattern);
  AddSetting(cmd, kApply, "group", o->group);
  AddMysqlOptions(cmd, kApply, o->mysql);
  AddSetting(cmd, kApply, "mapping", f->mapping_file)->check(CLI::ExistingFile);
  AddSetting(cmd, kApply, "on-drop", f->on_drop);
  AddSetting(cmd, kApply, "on-rename", f->on_rename);
  AddSetting(cmd, kApply, "mongo-uri", f->mongo_uri);
  AddSetting(cmd, kApply, "max-batch-events", o->max_batch_events);
  AddSetting(cmd, kApply, "max-batch-bytes", o->max_batch_bytes);
  f->batch_ms = static_cast<int>(o->max_batch_time.count());
  AddSetting(cmd, kApply, "max-batch-ms", f->batch_ms);
  AddSetting(cmd, kApply, "until-caught-up", o->until_caught_up);
  AddSetting(cmd, kApply, "no-instant", f->no_instant);
  f->retry_for_s = static_cast<int>(o->retry_for.count());
  AddSetting(cmd, kApply, "retry-for", f->retry_for_s)->check(CLI::NonNegativeNumber);
  AddSetting(cmd, kApply, "accept-lost-events", o->accept_lost_events);
  AddMetricsOptions(cmd, kApply, f->metrics);
  cmd->callback([o, f, &action] { action = [o, f] { return RunApply(*o, *f); }; });
}

}  // namespace m2m::cli
