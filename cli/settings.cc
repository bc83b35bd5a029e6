#include "settings.h"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>

#include "commands.h"

namespace m2m::cli {
namespace {

using T = SettingType;
constexpr uint32_t kMysqlUsers = kApply | kSpark | kStatus | kVerify | kDoctor | kQuarantine;
constexpr uint32_t kLogging = kCapture | kApply | kSpark | kStatus | kVerify | kQuarantine;

// clang-format off
constexpr Setting kSettings[] = {
  // Logging
  {"log-format", kLogging, T::kChoice, "text",
   "How log lines are written: text for people; json for log collectors, one object a line with time, level, "
   "message and the process's fields (command, capture name or apply group)",
   "text|json", "M2M_LOG_FORMAT", {}, "Logging"},
  {"log-level", kLogging, T::kChoice, "info", "The least severe level logged",
   "trace|debug|info|warn|error|off", "M2M_LOG_LEVEL", {}, "Logging"},
  {"config", kCapture | kApply | kStatus | kVerify, T::kString, "",
   "YAML file of options: keys are the long option names, ${ENV} is expanded", {}, {}, {}, "Config file"},

  // MongoDB
  {"mongo-uri", kCapture | kVerify | kDoctor, T::kString, "mongodb://127.0.0.1:27017",
   "MongoDB connection string (TLS and auth as URI options)", {}, "M2M_MONGO_URI", "mongodb.connection.string",
   "MongoDB"},
  {"mongo-uri", kApply | kSpark, T::kString, "",
   "MongoDB to fetch documents from when an update's delta cannot be applied column by column (without it such "
   "updates are quarantined)", {}, {}, {}, "MongoDB"},
  {"mongo-uri", kStatus, T::kString, "",
   "status --serve: MongoDB a retry reads the current document from (no retry without)", {}, {}, {}, "MongoDB"},
  {"mongo-uri", kQuarantine, T::kString, "", "MongoDB to read the documents from (quarantine replay)", {},
   "M2M_MONGO_URI", {}, "MongoDB", true},

  // Capture
  {"db", kCapture, T::kString, "", "Database to watch (omit to watch the whole deployment)", {}, {},
   "capture.scope, capture.target", "Capture"},
  {"collection", kCapture, T::kString, "", "Collection to watch (needs --db)", {}, {}, {}, "Capture"},
  {"include", kCapture, T::kList, "",
   "Database or deployment scope: publish only these collections, db.coll or /regex/ (repeatable)", {}, {},
   "collection.include.list", "Capture"},
  {"exclude", kCapture, T::kList, "", "Never publish these collections, db.coll or /regex/ (repeatable)", {}, {},
   "collection.exclude.list", "Capture"},
  {"name", kCapture, T::kString, "default", "Name of this capture: its transactional.id and checkpoint key", {}, {},
   "name", "Capture"},
  {"topic-prefix", kCapture | kStatus, T::kString, "m2m",
   "Prefix of capture's topics: <prefix>.<db>.<collection>, <prefix>.__checkpoints, <prefix>.__dead_letter", {},
   {}, "topic.prefix", "Capture"},
  {"partitions", kCapture, T::kInt, "1", "Partitions of topics capture creates", {}, {},
   "topic.creation.default.partitions", "Capture"},
  {"full-document", kCapture, T::kChoice, "updateLookup",
   "What update events carry besides the delta: the current document (updateLookup), the post-image "
   "(whenAvailable, required; MongoDB 6.0+) or nothing (default)",
   "default|updateLookup|whenAvailable|required", {}, "capture.mode", "Capture"},
  {"before-change", kCapture, T::kChoice, "off", "Pre-images (MongoDB 6.0+): off, whenAvailable or required",
   "off|whenAvailable|required", {}, "capture.mode", "Capture"},
  {"lag-warning-share", kCapture, T::kNumber, "0.5",
   "Warn when capture's lag passes this share of the oplog window", {}, {}, {}, "Capture"},
  {"max-message-bytes", kCapture, T::kInt, "83886080",
   "Largest record (key and encoded event) published to an event topic; a larger event goes whole to the "
   "dead-letter topic. The default (80 MiB) holds any event MongoDB sends of binary or text documents, pre-images "
   "included. Topics capture creates get max.message.bytes to match; an existing topic with less is an error giving "
   "the command that raises it (docs/checkpoints.md, \"Large documents\")", {}, {}, {}, "Capture"},
  {"max-buffer-bytes", kCapture, T::kInt, "268435456",
   "Bytes of events held in memory at once: half for snapshot documents read and not yet published, half for "
   "records queued in the Kafka producer (never less than the largest record). An event larger than its half still "
   "goes, alone (docs/checkpoints.md, \"Memory\")", {}, {}, "max.queue.size.in.bytes", "Capture"},
  {"max-batch-events", kCapture, T::kInt, "5000", "Events per Kafka transaction, at most", {}, {}, "max.batch.size",
   "Capture"},
  {"max-batch-ms", kCapture, T::kInt, "200",
   "Milliseconds per Kafka transaction under a steady flow, at most (a transaction commits as soon as the stream "
   "has nothing more)", {}, {}, {}, "Capture"},

  // Snapshot
  {"snapshot", kCapture, T::kChoice, "initial",
   "initial: on the first start, copy the collections before streaming; never: only stream", "initial|never", {},
   "snapshot.mode", "Snapshot"},
  {"resnapshot", kCapture, T::kFlag, "",
   "Forget the checkpoint, record a new start point and copy the collections again (the way out when the "
   "checkpoint has fallen off the oplog)", {}, {}, {}, "Snapshot"},
  {"snapshot-chunk-size", kCapture, T::kInt, "5000", "Documents per snapshot chunk and transaction", {}, {}, {},
   "Snapshot"},
  {"snapshot-parallelism", kCapture, T::kInt, "2", "Snapshot chunks read at the same time", {}, {},
   "snapshot.max.threads", "Snapshot"},

  // Kafka
  {"kafka-bootstrap", kCapture | kApply | kSpark | kStatus | kDoctor, T::kString, "127.0.0.1:9092",
   "Kafka bootstrap servers (host:port,...)", {}, "M2M_KAFKA_BOOTSTRAP", {}, "Kafka"},
  {"kafka", kCapture | kApply | kStatus, T::kKeyValue, "",
   "A librdkafka property key=value (repeatable), e.g. sasl.username=u; secrets (sasl.password, ...) only in a "
   "--config file (kafka: {sasl.password: ${KAFKA_PASSWORD}})", {}, {}, {}, "Kafka"},
  {"kafka-option", kSpark, T::kKeyValue, "",
   "An option of Spark's Kafka source key=value, e.g. kafka.security.protocol=SSL (repeatable)", {}, {}, {},
   "Kafka"},
  {"topics", kApply | kSpark, T::kString, "", "Topics to consume, comma-separated", {}, {}, {}, "Kafka"},
  {"topic-pattern", kApply | kSpark, T::kString, "",
   "Regular expression of the topics to consume instead of --topics; new matching topics are picked up", {}, {},
   {}, "Kafka"},
  {"max-offsets-per-trigger", kSpark, T::kInt, "",
   "At most this many Kafka records per micro-batch (Spark's maxOffsetsPerTrigger); the order across topics then "
   "holds within each micro-batch only (docs/spark.md). Default: no limit", {}, {}, {}, "Kafka"},

  // MySQL
  {"mysql-host", kMysqlUsers, T::kString, "127.0.0.1", "MySQL server", {}, "M2M_MYSQL_HOST", {}, "MySQL"},
  {"mysql-port", kMysqlUsers, T::kInt, "3306", "MySQL port", {}, "M2M_MYSQL_PORT", {}, "MySQL"},
  {"mysql-user", kMysqlUsers, T::kString, "mongo2mysql", "MySQL account", {}, "M2M_MYSQL_USER", {}, "MySQL"},
  {"mysql-password", kMysqlUsers, T::kSecret, "",
   "MySQL password, from the environment only: any user of the machine can read a process's command line", {},
   "M2M_MYSQL_PASSWORD", {}, "MySQL"},
  {"mysql-database", kApply | kSpark, T::kString, "", "Database the tables are written to (created if missing)", {},
   {}, {}, "MySQL", true},
  {"mysql-database", kStatus, T::kString, "",
   "Apply's database (without it only capture and Kafka are reported)", {}, {}, {}, "MySQL"},
  {"mysql-database", kVerify, T::kString, "", "Database apply writes to (default: the --db name)", {}, {}, {},
   "MySQL"},
  {"mysql-database", kQuarantine, T::kString, "", "The database apply writes to", {}, {}, {}, "MySQL", true},
  {"mysql-ssl-mode", kMysqlUsers, T::kChoice, "DISABLED",
   "TLS to MySQL, as mysql --ssl-mode: DISABLED; REQUIRED (encrypted, certificate not checked); VERIFY_CA "
   "(signed by --mysql-ssl-ca); VERIFY_IDENTITY (signed, and naming --mysql-host). Never falls back to plain text",
   "DISABLED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY", {}, {}, "MySQL"},
  {"mysql-ssl-ca", kMysqlUsers, T::kString, "",
   "PEM file of the CA that signs MySQL's certificate (VERIFY_IDENTITY without it: the system's CAs; Spark: on every "
   "node)", {}, {}, {}, "MySQL"},
  {"mysql-ssl-cert", kMysqlUsers, T::kString, "",
   "PEM client certificate, for accounts that REQUIRE X509 (Spark: on every node)", {}, {}, {}, "MySQL"},
  {"mysql-ssl-key", kMysqlUsers, T::kString, "",
   "PEM private key of --mysql-ssl-cert, a path, not the key (Spark: on every node)", {}, {}, {}, "MySQL"},

  // Apply
  {"group", kApply, T::kString, "mongo2mysql-apply",
   "Consumer group; apply processes with the same group share the partitions (and its offsets in _m2m_offsets)",
   {}, {}, {}, "Apply"},
  {"group", kSpark, T::kString, "",
   "The job's group in MySQL's _m2m_offsets (its applied positions). Default: spark-<mysql-database>", {}, {}, {},
   "Apply", false, "job-name"},
  {"group", kStatus, T::kString, "mongo2mysql-apply", "Apply's consumer group", {}, {}, {}, "Apply"},
  {"group", kQuarantine, T::kString, "", "Only the events of this apply group (default: every group)", {}, {}, {},
   "Apply"},
  {"mapping", kApply | kSpark | kVerify | kPreview | kQuarantine | kStatus, T::kString, "",
   "YAML mapping file (docs/mapping.md); verify, quarantine replay and status --serve's retries need the one apply "
   "runs with. Default: automatic mapping", {}, {}, {}, "Apply"},
  {"on-drop", kApply | kSpark, T::kChoice, "",
   "On a collection drop: keep the tables or drop them. Default: the mapping's (keep)", "keep|drop", {}, {},
   "Apply"},
  {"on-rename", kApply | kSpark, T::kChoice, "",
   "On a collection rename: rename the tables or keep them. Default: the mapping's (rename)", "rename|keep", {}, {},
   "Apply"},
  {"max-batch-events", kApply | kSpark, T::kInt, "5000",
   "Events per MySQL transaction (of a Spark task), at most", {}, {}, {}, "Apply"},
  {"max-batch-bytes", kApply, T::kInt, "67108864",
   "Bytes of Kafka records (keys and values) per MySQL transaction, at most; bounds apply's memory with large "
   "documents (a larger record is a batch alone)", {}, {}, {}, "Apply"},
  {"max-batch-ms", kApply, T::kInt, "500", "Milliseconds a batch collects events, at most", {}, {}, {}, "Apply"},
  {"max-batch-ms", kSpark, T::kInt, "100",
   "--real-time: a task commits its records once the oldest has waited this long (or --max-batch-events are in)",
   {}, {}, {}, "Apply"},
  {"until-caught-up", kApply | kSpark, T::kFlag, "",
   "Apply everything up to the ends of the partitions, then exit 0 (a batch catch-up run; Spark: trigger "
   "availableNow)", {}, {}, {}, "Apply"},
  {"no-instant", kApply | kPreview, T::kFlag, "", "Add columns without ALGORITHM=INSTANT", {}, {}, {}, "Apply"},
  {"retry-for", kApply, T::kInt, "600",
   "Seconds to keep trying while a server stays unreachable (0: for ever), then exit 3", {}, {}, {}, "Apply"},
  {"retry-for", kSpark, T::kInt, "600", "Seconds a task retries while MySQL is unreachable or restarting", {}, {},
   {}, "Apply"},
  {"accept-lost-events", kApply, T::kFlag, "",
   "Where Kafka no longer holds a partition's stored offset, continue at its first offset and log the lost range, "
   "instead of stopping (docs/apply.md, \"Events lost from Kafka\")", {}, {}, {}, "Apply"},
  {"accept-lost-events", kSpark, T::kFlag, "",
   "Go on when Kafka no longer holds records the job has not applied (deleted by retention, or the topic was "
   "deleted and made again): they are skipped and MySQL misses their changes. Default: stop with an error naming "
   "them (docs/spark.md, \"Records lost in Kafka\")", {}, {}, {}, "Apply", false, "allow-data-loss"},

  // Spark
  {"checkpoint", kSpark, T::kString, "",
   "Checkpoint location (any Hadoop file system URI on a cluster). Default: .stack/spark-checkpoints/<group>", {},
   {}, {}, "Spark"},
  {"trigger-interval", kSpark, T::kString, "1 second",
   "Streaming: start a micro-batch this often (processingTime trigger)", {}, {}, {}, "Spark"},
  {"real-time", kSpark, T::kFlag, "",
   "Streaming in Spark's Real-time Mode: long-running tasks hand each record to the core as it arrives, through a "
   "JVM writer (docs/spark.md, \"Real-time Mode\"); drops, renames and new collections are applied in micro-batches "
   "in between", {}, {}, {}, "Spark"},
  {"real-time-epoch", kSpark, T::kString, "5 minutes",
   "--real-time: how long each Real-time Mode batch runs (Spark's checkpoint interval; commits happen inside it; "
   "records wait while one ends and the next starts, and new topics are read from the next: docs/spark.md)",
   {}, {}, {}, "Spark"},
  {"master", kSpark, T::kString, "", "Spark master. Default: spark-submit's, else local[2]", {},
   "M2M_SPARK_MASTER", {}, "Spark"},

  // Metrics
  {"metrics-port", kCapture | kApply, T::kInt, "",
   "Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: any free port, logged). Default: no "
   "endpoint", {}, {}, {}, "Metrics"},
  {"metrics-host", kCapture | kApply, T::kString, "127.0.0.1",
   "Address the metrics endpoint listens on (it has no authentication: 0.0.0.0 serves every host)", {}, {}, {},
   "Metrics"},

  // status
  {"interval", kStatus, T::kNumber, "2",
   "Seconds between the two samples throughput comes from (0: none); with --serve, between samples", {}, {}, {},
   "status"},
  {"timeout", kStatus, T::kNumber, "15", "Seconds to wait for each server", {}, {}, {}, "status"},
  {"json", kStatus, T::kFlag, "", "Print JSON instead of tables", {}, {}, {}, "status"},
  {"serve", kStatus, T::kFlag, "", "Serve a status page (charts, quarantine browser) until stopped (docs/status.md)",
   {}, {}, {}, "status"},
  {"serve-host", kStatus, T::kString, "127.0.0.1",
   "IPv4 address the page listens on; it has no authentication, so 127.0.0.1 unless you mean it", {}, {}, {},
   "status"},
  {"serve-port", kStatus, T::kInt, "9189", "TCP port of the page; 0 picks a free one (printed)", {}, {}, {},
   "status"},
  {"history", kStatus, T::kNumber, "15", "Minutes of samples the page's charts show", {}, {}, {}, "status"},

  // verify
  {"db", kVerify, T::kString, "", "MongoDB database to compare", {}, {}, {}, "verify", true},
  {"collections", kVerify, T::kString, "",
   "Collections to compare, comma-separated (default: every collection in MongoDB or MySQL)", {}, {}, {}, "verify"},
  {"range-size", kVerify, T::kInt, "1000", "Documents per _id range", {}, {}, {}, "verify"},
  {"sample", kVerify, T::kNumber, "1", "Fraction of the ranges to check, in (0, 1]", {}, {}, {}, "verify"},
  {"seed", kVerify, T::kInt, "0", "Chooses the sampled ranges; the same seed checks the same ranges", {}, {}, {},
   "verify"},
  {"recheck-after", kVerify, T::kNumber, "10",
   "Seconds during which differing keys are checked again before they are reported; 0 reports at once", {}, {}, {},
   "verify"},

  // preview
  {"db", kPreview, T::kString, "test", "Database of plain documents", {}, {}, {}, "preview"},
  {"collection", kPreview, T::kString, "documents", "Collection of plain documents", {}, {}, {}, "preview"},
  {"separator", kPreview, T::kString, "", "Joins flattened names. Default: the mapping's (_)", {}, {}, {},
   "preview"},
  {"flatten-depth", kPreview, T::kInt, "", "Sub-document levels expanded into columns. Default: the mapping's (3)",
   {}, {}, {}, "preview"},
  {"scalar-arrays", kPreview, T::kChoice, "", "Arrays without documents. Default: the mapping's (json)",
   "json|table", {}, {}, "preview"},
  {"map-threshold", kPreview, T::kInt, "",
   "A sub-document with more keys is one JSON column. Default: the mapping's (64)", {}, {}, {}, "preview"},
  {"max-columns", kPreview, T::kInt, "",
   "Columns per table before fields go to _overflow. Default: the mapping's (500)", {}, {}, {}, "preview"},

  // quarantine
  {"done", kQuarantine, T::kFlag, "", "list: also the events replayed or dismissed already", {}, {}, {},
   "quarantine"},
  {"json", kQuarantine, T::kFlag, "", "list: print JSON, every field whole", {}, {}, {}, "quarantine"},
  {"id", kQuarantine, T::kList, "", "replay, dismiss: a quarantine row's id (repeatable)", {}, {}, {},
   "quarantine"},
  {"all", kQuarantine, T::kFlag, "", "replay, dismiss: every pending row (of --group)", {}, {}, {}, "quarantine"},
  {"note", kQuarantine, T::kString, "", "dismiss: how they were dealt with", {}, {}, {}, "quarantine", true},
};
// clang-format on

constexpr std::pair<Command, std::string_view> kCommandNames[] = {
    {kCapture, "capture"}, {kApply, "apply"},   {kSpark, "spark"},   {kStatus, "status"},
    {kVerify, "verify"},   {kDoctor, "doctor"}, {kPreview, "preview"}, {kQuarantine, "quarantine"}};

std::vector<std::string> Split(std::string_view list) {
  std::vector<std::string> out;
  for (size_t start = 0; start < list.size();) {
    size_t bar = std::min(list.find('|', start), list.size());
    out.emplace_back(list.substr(start, bar - start));
    start = bar + 1;
  }
  return out;
}

std::string_view TypeName(SettingType type) {
  switch (type) {
    case T::kString: return "string";
    case T::kInt: return "integer";
    case T::kNumber: return "number";
    case T::kFlag: return "flag";
    case T::kList: return "list";
    case T::kChoice: return "choice";
    case T::kKeyValue: return "key=value list";
    case T::kSecret: return "secret";
  }
  return "?";
}

std::string Commands(uint32_t commands) {
  std::string out;
  for (const auto& [c, name] : kCommandNames) {
    if (commands & c) out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

std::vector<std::string>& Mismatches() {
  static std::vector<std::string> mismatches;
  return mismatches;
}

// A string as a JSON (and Python) string literal.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Markdown table cells cannot hold '|', and <prefix> would be taken for an HTML tag.
std::string Cell(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : c == '<' ? std::string("&lt;") : std::string(1, c);
  return out;
}

std::string Markdown() {
  std::string out =
      "<!-- Generated by `mongo2mysql settings --format markdown` from the table in cli/settings.cc; do not edit.\n"
      "     Change the table, then run `cmake --build build --target settings-reference`. -->\n"
      "# Configuration reference\n\n"
      "Every setting of every command, and of the Spark job (`python -m m2m_spark.job`, which takes the same\n"
      "names as `mongo2mysql apply`), from the one table they are all declared in (cli/settings.cc). A setting\n"
      "is given, from the strongest to the weakest:\n\n"
      "1. on the command line: `--mysql-host db1`, a flag alone: `--until-caught-up`;\n"
      "2. in a config file, `mongo2mysql <command> --config FILE`: a YAML map whose keys are the same names\n"
      "   (`mysql-host: db1`, a flag as `until-caught-up: true`, a repeatable one as a list). Nested maps join\n"
      "   their keys with `-` (`mysql: {host: db1}` is `mysql-host`), except `kafka:`, whose entries are\n"
      "   librdkafka properties (`kafka: {security.protocol: SASL_SSL}`). `${NAME}` in a value is the\n"
      "   environment variable NAME: that is how secrets stay off the command line. An unknown key is an error\n"
      "   naming it;\n"
      "3. by its environment variable, where it has one (column Environment);\n"
      "4. else the default.\n\n"
      "Old names, shown under a setting's name, are still accepted. The Debezium column names the Debezium MongoDB\n"
      "connector's property for the same thing, for those moving from it. `--log-format json` makes every line\n"
      "of the log one JSON object: `time` (UTC, ISO 8601), `level`, `message`, and the process's fields\n"
      "(`command`, and `capture` or `group`).\n";
  std::vector<std::string_view> sections;
  for (const Setting& s : kSettings) {
    if (std::find(sections.begin(), sections.end(), s.section) == sections.end()) sections.push_back(s.section);
  }
  for (std::string_view section : sections) {
    out += "\n## " + std::string(section) + "\n\n";
    out += "| Setting | Commands | Type | Default | Environment | Debezium | Meaning |\n";
    out += "|---|---|---|---|---|---|---|\n";
    for (const Setting& s : kSettings) {
      if (s.section != section) continue;
      std::string name = s.type == T::kSecret ? "(environment only)" : "`" + std::string(s.name) + "`";
      for (const std::string& old : Split(s.old_names)) name += "<br>old name: `" + old + "`";
      std::string type(TypeName(s.type));
      if (!s.choices.empty()) type += ": " + Cell(s.choices);
      std::string def = s.required ? "required" : s.default_value.empty() ? "" : "`" + std::string(s.default_value) + "`";
      out += "| " + name + " | " + Commands(s.commands) + " | " + type + " | " + def + " | " +
             (s.env.empty() ? "" : "`" + std::string(s.env) + "`") + " | " +
             (s.debezium.empty() ? "" : "`" + std::string(s.debezium) + "`") + " | " + Cell(s.meaning) + " |\n";
    }
  }
  return out;
}

std::string Python() {
  std::string out =
      "# Generated by `mongo2mysql settings --format python` from the table in cli/settings.cc; do not edit.\n"
      "# Change the table, then run `cmake --build build --target settings-reference`.\n"
      "\"\"\"The Spark job's settings, from the table every mongo2mysql command's options come from.\"\"\"\n\n"
      "SETTINGS = [\n";
  for (const Setting& s : kSettings) {
    if (!(s.commands & kSpark) || s.type == T::kSecret) continue;
    std::string choices, old;
    for (const std::string& c : Split(s.choices)) choices += (choices.empty() ? "" : ", ") + Quoted(c);
    for (const std::string& o : Split(s.old_names)) old += (old.empty() ? "" : ", ") + Quoted(o);
    out += "    {\"name\": " + Quoted(s.name) + ", \"type\": " + Quoted(TypeName(s.type)) +
           ", \"default\": " + Quoted(s.default_value) + ",\n     \"meaning\": " + Quoted(s.meaning) +
           ",\n     \"choices\": [" + choices + "], \"env\": " + Quoted(s.env) + ", \"section\": " +
           Quoted(s.section) + ", \"required\": " + (s.required ? "True" : "False") + ", \"old_names\": [" + old +
           "]},\n";
  }
  return out + "]\n";
}

}  // namespace

std::span<const Setting> Settings() { return kSettings; }

const Setting& FindSetting(std::string_view name, Command command) {
  for (const Setting& s : kSettings) {
    if (s.name == name && (s.commands & command)) return s;
  }
  std::fprintf(stderr, "mongo2mysql: internal error: setting %.*s of %s is not in cli/settings.cc\n",
               static_cast<int>(name.size()), name.data(), Commands(command).c_str());
  std::abort();
}

CLI::Option* AddSetting(CLI::App* cmd, Command command, std::string_view name) {
  const Setting& s = FindSetting(name, command);
  return detail::Declare(s, cmd->add_option(detail::FlagName(s))->description(std::string(s.meaning)), true);
}

namespace detail {

std::string FlagName(const Setting& s) {
  std::string names = "--" + std::string(s.name);
  for (const std::string& old : Split(s.old_names)) names += ",--" + old;
  return names;
}

CLI::Option* Declare(const Setting& s, CLI::Option* option, bool check_choices) {
  if (!s.default_value.empty() && s.type != T::kFlag) option->default_str(std::string(s.default_value));
  if (!s.env.empty()) option->envname(std::string(s.env));
  if (s.type == T::kChoice && check_choices) option->check(CLI::IsMember(Split(s.choices)));
  if (s.required) option->required();
  return option;
}

void DefaultMismatch(const Setting& s, std::string bound) {
  Mismatches().push_back("--" + std::string(s.name) + " of " + Commands(s.commands) + ": the table says " +
                         std::string(s.default_value) + ", the options struct " + bound);
}

}  // namespace detail

void AddSettingsCommand(CLI::App& app, Action& action) {
  auto format = std::make_shared<std::string>("markdown");
  CLI::App* cmd = app.add_subcommand("settings", "Print the reference of every setting (docs/configuration.md).");
  cmd->footer(
      "--format markdown prints docs/configuration.md; --format python the Spark job's table\n"
      "(spark/m2m_spark/settings_table.py). Both come from the one table of settings in cli/settings.cc;\n"
      "`cmake --build build --target settings-reference` writes them into the source tree.");
  cmd->add_option("--format", *format, "markdown or python")
      ->check(CLI::IsMember({"markdown", "python"}))
      ->capture_default_str();
  cmd->callback([format, &action] {
    action = [format]() -> Status {
      if (!Mismatches().empty()) {
        std::string all;
        for (const std::string& m : Mismatches()) all += "\n  " + m;
        return Status::Internal("defaults of cli/settings.cc disagree with the options structs':" + all);
      }
      std::string text = *format == "python" ? Python() : Markdown();
      std::fputs(text.c_str(), stdout);
      return Status::OK();
    };
  });
}

}  // namespace m2m::cli
