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

Status RunCapture(capture::CaptureOptions o, const std::vector<std::string>& kafka_props, const MetricsFlags& metrics) {
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
  auto bootstrap = std::make_shared<std::string>("127.0.0.1:9092");
  auto metrics = std::make_shared<MetricsFlags>();
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
  AddConfigOption(cmd);
  cmd->add_option("--mongo-uri", o->mongo.uri, "MongoDB connection string (TLS and auth as URI options)")
      ->capture_default_str();
  cmd->add_option("--db", o->stream.database, "Database to watch (omit to watch the whole deployment)");
  cmd->add_option("--collection", o->stream.collection, "Collection to watch (needs --db)");
  cmd->add_option("--include", o->include_collections,
                  "Database or deployment scope: publish only these collections, db.coll or /regex/ (repeatable)");
  cmd->add_option("--exclude", o->exclude_collections, "Never publish these collections, db.coll or /regex/ (repeatable)");
  cmd->add_option("--lag-warning-share", o->lag_warning_share,
                  "Warn when capture's lag passes this share of the oplog window")->capture_default_str();
  cmd->add_option("--kafka-bootstrap", *bootstrap, "Kafka bootstrap servers")->capture_default_str();
  cmd->add_option("--kafka", *kafka_props, kKafkaPropertyHelp);
  cmd->add_option("--name", o->name, "Name of this capture: its transactional.id and checkpoint key")
      ->capture_default_str();
  cmd->add_option("--topic-prefix", o->topic_prefix, "Prefix of the topics written")->capture_default_str();
  cmd->add_option("--partitions", o->topic_partitions, "Partitions of topics capture creates")->capture_default_str();
  static const std::map<std::string, capture::FullDocumentMode> kFullDocument = {
      {"default", capture::FullDocumentMode::kDefault},
      {"updateLookup", capture::FullDocumentMode::kUpdateLookup},
      {"whenAvailable", capture::FullDocumentMode::kWhenAvailable},
      {"required", capture::FullDocumentMode::kRequired}};
  static const std::map<std::string, capture::BeforeChangeMode> kBeforeChange = {
      {"off", capture::BeforeChangeMode::kOff},
      {"whenAvailable", capture::BeforeChangeMode::kWhenAvailable},
      {"required", capture::BeforeChangeMode::kRequired}};
  auto full_document = std::make_shared<std::string>("updateLookup");
  auto before_change = std::make_shared<std::string>("off");
  cmd->add_option("--full-document", *full_document,
                  "What update events carry besides the delta: the current document (updateLookup), the "
                  "post-image (whenAvailable, required; MongoDB 6.0+) or nothing (default)")
      ->check(CLI::IsMember({"default", "updateLookup", "whenAvailable", "required"}))
      ->capture_default_str();
  cmd->add_option("--before-change", *before_change, "Pre-images (MongoDB 6.0+): off, whenAvailable or required")
      ->check(CLI::IsMember({"off", "whenAvailable", "required"}))
      ->capture_default_str();
  auto snapshot_mode = std::make_shared<std::string>("initial");
  cmd->add_option("--snapshot", *snapshot_mode,
                  "initial: on the first start, copy the collections before streaming; never: only stream")
      ->check(CLI::IsMember({"initial", "never"}))
      ->capture_default_str();
  cmd->add_flag("--resnapshot", o->resnapshot,
                "Forget the checkpoint, record a new start point and copy the collections again (the way "
                "out when the checkpoint has fallen off the oplog)");
  cmd->add_option("--snapshot-chunk-size", o->snapshot.chunk_size, "Documents per snapshot chunk and transaction")
      ->capture_default_str();
  cmd->add_option("--snapshot-parallelism", o->snapshot.parallelism, "Snapshot chunks read at the same time")
      ->capture_default_str();
  cmd->add_option("--max-message-bytes", o->max_message_bytes,
                  "Largest record (key and encoded event) published to an event topic; a larger event goes "
                  "whole to the dead-letter topic. The default (80 MiB) holds any event MongoDB sends of "
                  "binary or text documents, pre-images included. Topics capture creates get "
                  "max.message.bytes to match; an existing topic with less is an error giving the command "
                  "that raises it (docs/checkpoints.md, \"Large documents\")")->capture_default_str();
  cmd->add_option("--max-buffer-bytes", o->max_buffer_bytes,
                  "Bytes of events held in memory at once: half for snapshot documents read and not yet "
                  "published, half for records queued in the Kafka producer (never less than the largest "
                  "record). An event larger than its half still goes, alone (docs/checkpoints.md, \"Memory\")")
      ->capture_default_str();
  cmd->add_option("--max-batch-events", o->max_batch_events, "Events per Kafka transaction, at most")
      ->capture_default_str();
  auto batch_ms = std::make_shared<int>(200);
  cmd->add_option("--max-batch-ms", *batch_ms, "Milliseconds per Kafka transaction under a steady flow, at most (a transaction commits as soon as the stream has nothing more)")->capture_default_str();
  AddMetricsOptions(cmd, *metrics);
  cmd->callback([o, kafka_props, bootstrap, batch_ms, full_document, before_change, snapshot_mode, metrics, &action] {
    o->snapshot_mode = *snapshot_mode == "never" ? capture::SnapshotMode::kNever : capture::SnapshotMode::kInitial;
    o->kafka["bootstrap.servers"] = *bootstrap;
    o->stream.full_document = kFullDocument.at(*full_document);
    o->stream.before_change = kBeforeChange.at(*before_change);
    o->max_batch_time = std::chrono::milliseconds(*batch_ms);
    action = [o, kafka_props, metrics] { return RunCapture(*o, *kafka_props, *metrics); };
  });
}

}  // namespace m2m::cli
