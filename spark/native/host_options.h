// The ApplierOptions of the core the Spark engine's executors host (libm2m_jni, spark/jvm: the
// micro-batch tasks and Real-time Mode's writer), from the job's settings as text.
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

// libmariadb loads its authentication plugins (caching_sha2_password, MySQL 8's default, ...) when a
// server asks for one, from the folder compiled into it: Debian's, which a node that installed the
// wheel may lack. The wheel carries them in m2m_spark/jvm/mariadb-plugins/ (spark/jvm/CMakeLists.txt).
// Sets MARIADB_PLUGIN_DIR to `plugins`, a folder relative to the file of the module this is linked
// into (libm2m_jni.so), when that folder exists: a checkout's build has none, and a MARIADB_PLUGIN_DIR
// set by the user wins. Call it at load time, before the module's threads start (setenv).
void UseBundledMariadbPlugins(const char* plugins);

}  // namespace m2m::apply
