// mongo2mysql capture: MongoDB change streams into Kafka, exactly once.
#include <fmt/format.h>

#include "capture.h"
#include "commands.h"
#include "config_file.h"
#include "daemon.h"

namespace m2m::cli {
namespace {

std::string ServiceStatus(const capture::CaptureStats& s) {
  return fmt::format("capturing: {} events in {} transactions, {} snapshot documents, {} dead-lettered, {} retries",
                     s.events.load(), s.transactions.load(), s.snapshot_documents.load(), s.dead_letters.load(),
                     s.errors.load());
}

Status RunCapture(capture::CaptureOptions o, const std::vector<std::string>& kafka_props, const MetricsFlags& metrics,
                  const LogFlags& log) {
  M2M_RETURN_NOT_OK(StartLogging(log, {{"command", "capture"}, {"capture", o.name}}));
  M2M_RETURN_NOT_OK(AddKafkaProperties(kafka_props, o.kafka));
  if (!o.stream.collection.empty()) o.stream.scope = capture::StreamScope::kCollection;
  else if (!o.stream.database.empty()) o.stream.scope = capture::StreamScope::kDatabase;
  else o.stream.scope = capture::StreamScope::kDeployment;
  InstallStopSignals();
  MetricLabels labels = {{"capture", o.name}};
  return RunDaemon(capture::Capture::Make(std::move(o)), metrics, std::move(labels), ServiceStatus);
}

}  // namespace

void AddCaptureCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<capture::CaptureOptions>();
  auto kafka_props = std::make_shared<std::vector<std::string>>();
  auto bootstrap = std::make_shared<std::string>(o->kafka["bootstrap.servers"]);
  auto metrics = std::make_shared<MetricsFlags>();
  auto log = std::make_shared<LogFlags>();
  CLI::App* cmd = app.add_subcommand("capture", "Stream MongoDB changes into Kafka, exactly once.");
  cmd->footer(
      "Watches one collection (--db and --collection), one database (--db) or the whole deployment\n"
      "(neither). On its first start it records the stream's start point, copies every document of\n"
      "those collections (the snapshot: read events, op \"r\", in _id-range chunks, each committed with\n"
      "its progress, so a restart continues at the next chunk), then streams from the start point.\n"
      "It publishes each change to the topic <topic-prefix>.<db>.<collection>, keyed by\n"
      "the document's _id, in the format of docs/events.md. Events and the resume point are committed\n"
      "in one Kafka transaction, so after a crash capture continues exactly after the last committed\n"
      "batch: nothing lost, nothing published twice for read_committed consumers. Events that cannot\n"
      "be converted or are larger than --max-message-bytes go whole to <topic-prefix>.__dead_letter\n"
      "with the reason.\n"
      "MongoDB unreachable after the start (an election, a restart) is waited out: capture logs\n"
      "each try and goes on from its last checkpoint or unfinished chunk (docs/checkpoints.md).\n"
      "Stop with Ctrl-C or SIGTERM; the current batch is abandoned and redone on the next start.\n\n"
      "Example:\n"
      "  mongo2mysql capture --mongo-uri 'mongodb://db1:27017/?replicaSet=rs0' --db shop \\\n"
      "      --kafka-bootstrap broker:9092 --kafka security.protocol=SASL_SSL --name shop\n\n"
      "The same as a config file (mongo2mysql capture --config capture.yaml), secrets from the environment:\n"
      "  mongo-uri: mongodb://replicator:${MONGO_PASSWORD}@db1:27017/?replicaSet=rs0&tls=true\n"
      "  db: shop\n"
      "  name: shop\n"
      "  kafka-bootstrap: broker:9092\n"
      "  kafka:\n"
      "    security.protocol: SASL_SSL\n"
      "    sasl.mechanism: SCRAM-SHA-512\n"
      "    sasl.username: replicator\n"
      "    sasl.password: ${KAFKA_PASSWORD}");
  AddConfigOption(cmd, kCapture);
  AddLogOptions(cmd, kCapture, *log);
  AddSetting(cmd, kCapture, "mongo-uri", o->mongo.uri);
  AddSetting(cmd, kCapture, "db", o->stream.database);
  AddSetting(cmd, kCapture, "collection", o->stream.collection);
  AddSetting(cmd, kCapture, "include", o->include_collections);
  AddSetting(cmd, kCapture, "exclude", o->exclude_collections);
  AddSetting(cmd, kCapture, "lag-warning-share", o->lag_warning_share);
  AddSetting(cmd, kCapture, "kafka-bootstrap", *bootstrap);
  AddSetting(cmd, kCapture, "kafka", *kafka_props);
  AddSetting(cmd, kCapture, "name", o->name);
  AddSetting(cmd, kCapture, "topic-prefix", o->topic_prefix);
  AddSetting(cmd, kCapture, "partitions", o->topic_partitions);
  static const std::map<std::string, capture::FullDocumentMode> kFullDocument = {
      {"default", capture::FullDocumentMode::kDefault},
      {"updateLookup", capture::FullDocumentMode::kUpdateLookup},
      {"whenAvailable", capture::FullDocumentMode::kWhenAvailable},
      {"required", capture::FullDocumentMode::kRequired}};
  static const std::map<std::string, capture::BeforeChangeMode> kBeforeChange = {
      {"off", capture::BeforeChangeMode::kOff},
      {"whenAvailable", capture::BeforeChangeMode::kWhenAvailable},
      {"required", capture::BeforeChangeMode::kRequired}};
  auto full_document = std::make_shared<std::string>();
  auto before_change = std::make_shared<std::string>();
  auto snapshot_mode = std::make_shared<std::string>();
  AddSetting(cmd, kCapture, "full-document", *full_document);
  AddSetting(cmd, kCapture, "before-change", *before_change);
  AddSetting(cmd, kCapture, "snapshot", *snapshot_mode);
  AddSetting(cmd, kCapture, "resnapshot", o->resnapshot);
  AddSetting(cmd, kCapture, "snapshot-chunk-size", o->snapshot.chunk_size);
  AddSetting(cmd, kCapture, "snapshot-parallelism", o->snapshot.parallelism);
  AddSetting(cmd, kCapture, "max-message-bytes", o->max_message_bytes);
  AddSetting(cmd, kCapture, "max-buffer-bytes", o->max_buffer_bytes);
  AddSetting(cmd, kCapture, "max-batch-events", o->max_batch_events);
  auto batch_ms = std::make_shared<int>(static_cast<int>(o->max_batch_time.count()));
  AddSetting(cmd, kCapture, "max-batch-ms", *batch_ms);
  AddMetricsOptions(cmd, kCapture, *metrics);
  cmd->callback([o, kafka_props, bootstrap, batch_ms, full_document, before_change, snapshot_mode, metrics, log,
                 &action] {
    o->snapshot_mode = *snapshot_mode == "never" ? capture::SnapshotMode::kNever : capture::SnapshotMode::kInitial;
    o->kafka["bootstrap.servers"] = *bootstrap;
    o->stream.full_document = kFullDocument.at(*full_document);
    o->stream.before_change = kBeforeChange.at(*before_change);
    o->max_batch_time = std::chrono::milliseconds(*batch_ms);
    action = [o, kafka_props, metrics, log] { return RunCapture(*o, *kafka_props, *metrics, *log); };
  });
}

}  // namespace m2m::cli
