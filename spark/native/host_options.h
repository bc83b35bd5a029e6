// The ApplierOptions of a Spark-hosted core (the m2m_core Python extension and the JVM writer of
// Real-time Mode, spark/jvm), from the job's settings as text: both hosts take the same settings, so
// they are read here once.
#pragma once

#include <map>
#include <string>

#include "applier.h"

namespace m2m::apply {

// Keys: group; the MySQL connection's host, port, user, password, database, timeout_seconds, ssl_mode
// (DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY, any case), ssl_ca, ssl_cert, ssl_key; mapping_yaml,
// mongo_uri, on_drop (keep, drop), on_rename (rename, keep), instant_add_column (true, false). Absent
// keys keep ApplierOptions' defaults. An unknown key or a bad value is InvalidArgument naming it.
// wait_for_copies is off: a Spark task cannot wait for another (docs/spark.md, "Exactly once").
Result<ApplierOptions> SparkApplierOptions(const std::map<std::string, std::string>& settings);

}  // namespace m2m::apply
