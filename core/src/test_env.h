// Test-only: where the local stack's servers are (stack/env.sh exports the same variables) and
// unique names so tests isolate themselves from each other.
#pragma once

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

#include "m2m/kafka_client.h"
#include "m2m/mysql_client.h"

namespace m2m::testing {

inline std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

inline std::string Host() { return Env("M2M_HOST", "127.0.0.1"); }

inline KafkaConfig StackKafkaConfig() {
  return {{"bootstrap.servers", Host() + ":" + Env("M2M_KAFKA_PORT", "9092")}};
}

inline MysqlOptions StackMysqlOptions() {
  MysqlOptions o;
  o.host = Host();
  o.port = static_cast<unsigned>(std::stoul(Env("M2M_MYSQL_PORT", "3306")));
  o.user = Env("M2M_MYSQL_USER", "mongo2mysql");
  o.password = Env("M2M_MYSQL_PASSWORD", "mongo2mysql");
  return o;
}

inline std::string StackMongoUri() {
  return "mongodb://" + Host() + ":" + Env("M2M_MONGO_PORT", "27017");
}

// "<prefix>_<random hex>": a name no other test run uses.
inline std::string UniqueName(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}() ^
                             static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return prefix + "_" + buf;
}

}  // namespace m2m::testing

// Asserts that a Status (or a Result's status()) is OK, printing it otherwise.
#define M2M_ASSERT_OK(expr)                         \
  do {                                              \
    ::m2m::Status _st = (expr);                     \
    ASSERT_TRUE(_st.ok()) << _st.ToString();        \
  } while (false)
