#include "mysql_flags.h"

#include <cstdlib>
#include <map>

namespace m2m::cli {

void AddMysqlOptions(CLI::App* cmd, Command command, MysqlOptions& mysql, bool with_database) {
  AddSetting(cmd, command, "mysql-host", mysql.host);
  AddSetting(cmd, command, "mysql-port", mysql.port);
  AddSetting(cmd, command, "mysql-user", mysql.user);
  static const std::map<std::string, MysqlSslMode> kModes{
      {"DISABLED", MysqlSslMode::kDisabled},
      {"REQUIRED", MysqlSslMode::kRequired},
      {"VERIFY_CA", MysqlSslMode::kVerifyCa},
      {"VERIFY_IDENTITY", MysqlSslMode::kVerifyIdentity}};
  AddSetting(cmd, command, "mysql-ssl-mode", mysql.ssl_mode)
      ->transform(CLI::CheckedTransformer(kModes, CLI::ignore_case).description(""));
  AddSetting(cmd, command, "mysql-ssl-ca", mysql.ssl_ca);
  AddSetting(cmd, command, "mysql-ssl-cert", mysql.ssl_cert);
  AddSetting(cmd, command, "mysql-ssl-key", mysql.ssl_key);
  if (with_database) AddSetting(cmd, command, "mysql-database", mysql.database);
}

void ReadMysqlPassword(MysqlOptions& mysql) {
  const char* env = FindSetting("mysql-password", kApply).env.data();  // a literal: NUL-terminated
  if (const char* password = std::getenv(env)) mysql.password = password;
}

}  // namespace m2m::cli
