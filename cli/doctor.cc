// mongo2mysql doctor: can this machine reach the three servers the pipeline needs?
#include <cstdio>

#include "commands.h"
#include "m2m/kafka_client.h"
#include "m2m/mongo_client.h"
#include "m2m/mysql_client.h"
#include "mysql_flags.h"

namespace m2m::cli {
namespace {

struct DoctorOptions {
  MongoOptions mongo;
  std::string kafka_bootstrap;
  MysqlOptions mysql;
};

Status CheckKafka(const std::string& bootstrap) {
  M2M_ASSIGN_OR_RETURN(auto admin, KafkaAdmin::Make({{"bootstrap.servers", bootstrap}}));
  // Creating an existing internal-looking topic is cheap and proves the broker answers admin requests.
  return admin->CreateTopic("__mongo2mysql_doctor", 1, {}, std::chrono::seconds(15));
}

Status Report(const char* what, Status st) {
  std::printf("%-8s %s\n", what, st.ok() ? "ok" : st.ToString().c_str());
  return st;
}

Status RunDoctor(const DoctorOptions& o) {
  Status first;
  auto keep = [&](Status st) {
    if (first.ok()) first = std::move(st);
  };
  // The URI says what was tried, without its secrets (the output goes to terminals, tickets and logs).
  const std::string uri = RedactedUri(o.mongo.uri);
  keep(Report("mongodb", [&]() -> Status {
    M2M_ASSIGN_OR_RETURN(auto client, MongoClient::Connect(o.mongo));
    M2M_ASSIGN_OR_RETURN(std::string version, client->ServerVersion());
    std::printf("%-8s server %s at %s\n", "", version.c_str(), uri.c_str());
    return Status::OK();
  }().WithContext(uri)));
  keep(Report("kafka", CheckKafka(o.kafka_bootstrap)));
  keep(Report("mysql", [&]() -> Status {
    M2M_ASSIGN_OR_RETURN(auto mysql, MysqlConnection::Connect(o.mysql));
    std::string cipher = mysql->tls_cipher();
    std::printf("%-8s %s:%u, %s\n", "", o.mysql.host.c_str(), o.mysql.port,
                cipher.empty() ? "plain TCP (--mysql-ssl-mode DISABLED)"
                               : ("TLS " + cipher + ", ssl mode " + MysqlSslModeName(o.mysql.ssl_mode)).c_str());
    return Status::OK();
  }()));
  return first;
}

}  // namespace

void AddDoctorCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<DoctorOptions>();
  ReadMysqlPassword(o->mysql);
  CLI::App* cmd = app.add_subcommand("doctor", "Check that MongoDB, Kafka and MySQL can be reached.");
  cmd->footer(
      "Connects to each server with the given settings and prints one line per server.\n"
      "The MySQL password is read from the environment variable M2M_MYSQL_PASSWORD, never from argv.\n"
      "Example: mongo2mysql doctor --mongo-uri mongodb://db1:27017/?replicaSet=rs0 --mysql-host 10.0.0.5");
  AddSetting(cmd, kDoctor, "mongo-uri", o->mongo.uri);
  AddSetting(cmd, kDoctor, "kafka-bootstrap", o->kafka_bootstrap);
  AddMysqlOptions(cmd, kDoctor, o->mysql, /*with_database=*/false);
  cmd->callback([o, &action] { action = [o] { return RunDoctor(*o); }; });
}

}  // namespace m2m::cli
