#include "host_options.h"

#include <dlfcn.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>

namespace m2m::apply {
namespace {

Result<unsigned> Unsigned(const std::string& key, const std::string& text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status::Invalid(key + " must be a non-negative integer, not \"" + text + "\"");
  }
  return value;
}

// The --ssl-mode names of MySQL's clients, in any case.
Result<MysqlSslMode> SslMode(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (MysqlSslMode mode : {MysqlSslMode::kDisabled, MysqlSslMode::kRequired, MysqlSslMode::kVerifyCa,
                            MysqlSslMode::kVerifyIdentity}) {
    if (name == MysqlSslModeName(mode)) return mode;
  }
  return Status::Invalid("ssl_mode must be DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY, not " + name);
}

}  // namespace

Result<ApplierOptions> SparkApplierOptions(const std::map<std::string, std::string>& settings) {
  ApplierOptions o;
  std::string on_drop, on_rename;
  for (const auto& [k, v] : settings) {
    if (k == "group") {
      o.group = v;
    } else if (k == "host") {
      o.mysql.host = v;
    } else if (k == "port") {
      M2M_ASSIGN_OR_RETURN(o.mysql.port, Unsigned(k, v));
    } else if (k == "user") {
      o.mysql.user = v;
    } else if (k == "password") {
      o.mysql.password = v;
    } else if (k == "database") {
      o.mysql.database = v;
    } else if (k == "timeout_seconds") {
      M2M_ASSIGN_OR_RETURN(o.mysql.timeout_seconds, Unsigned(k, v));
    } else if (k == "ssl_mode") {
      M2M_ASSIGN_OR_RETURN(o.mysql.ssl_mode, SslMode(v));
    } else if (k == "ssl_ca") {
      o.mysql.ssl_ca = v;
    } else if (k == "ssl_cert") {
      o.mysql.ssl_cert = v;
    } else if (k == "ssl_key") {
      o.mysql.ssl_key = v;
    } else if (k == "mapping_yaml") {
      M2M_ASSIGN_OR_RETURN(o.mapping, ParseMappingYaml(v));
    } else if (k == "mongo_uri") {
      o.mongo = MongoOptions{.uri = v};
    } else if (k == "on_drop") {
      on_drop = v;
    } else if (k == "on_rename") {
      on_rename = v;
    } else if (k == "instant_add_column") {
      if (v != "true" && v != "false") return Status::Invalid("instant_add_column must be true or false, not " + v);
      o.sql.instant_add_column = v == "true";
    } else {
      return Status::Invalid("setting " + k + " is not known (group, host, port, user, password, database, "
                             "timeout_seconds, ssl_mode, ssl_ca, ssl_cert, ssl_key, mapping_yaml, mongo_uri, "
                             "on_drop, on_rename, instant_add_column)");
    }
  }
  // After the mapping, whose own options these override.
  if (on_drop == "drop") {
    o.mapping.options.on_drop = DropPolicy::kDrop;
  } else if (on_drop == "keep") {
    o.mapping.options.on_drop = DropPolicy::kKeep;
  } else if (!on_drop.empty()) {
    return Status::Invalid("on_drop must be keep or drop, not " + on_drop);
  }
  if (on_rename == "keep") {
    o.mapping.options.on_rename = RenamePolicy::kKeep;
  } else if (on_rename == "rename") {
    o.mapping.options.on_rename = RenamePolicy::kRename;
  } else if (!on_rename.empty()) {
    return Status::Invalid("on_rename must be rename or keep, not " + on_rename);
  }
  // The driver orders the copies of a drop or rename (docs/spark.md), and one task cannot wait for
  // another's: the first copy runs the event, the later ones change nothing.
  o.wait_for_copies = false;
  return o;
}

void UseBundledMariadbPlugins(const char* plugins) {
  if (std::getenv("MARIADB_PLUGIN_DIR") != nullptr) return;
  // This function's own module: the library is static, linked into each host.
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&UseBundledMariadbPlugins), &self) == 0 || self.dli_fname == nullptr) return;
  const std::filesystem::path folder = (std::filesystem::path(self.dli_fname).parent_path() / plugins).lexically_normal();
  std::error_code ec;
  if (std::filesystem::is_directory(folder, ec)) setenv("MARIADB_PLUGIN_DIR", folder.c_str(), 0);
}

}  // namespace m2m::apply
