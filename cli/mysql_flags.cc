#include "mysql_flags.h"

#include <cstdlib>
#include <map>

namespace m2m::cli {

CLI::Option* AddMysqlOptions(CLI::App* cmd, MysqlOptions& mysql, const char* database_help) {
  cmd->add_option("--mysql-host", mysql.host, "MySQL server")->capture_default_str();
  cmd->add_option("--mysql-port", mysql.port, "MySQL port")->capture_default_str();
  cmd->add_option("--mysql-user", mysql.user, "MySQL account (password: env M2M_MYSQL_PASSWORD)")
      ->capture_default_str();
  static const std::map<std::string, MysqlSslMode> kModes{
      {"DISABLED", MysqlSslMode::kDisabled},
      {"REQUIRED", MysqlSslMode::kRequired},
      {"VERIFY_CA", MysqlSslMode::kVerifyCa},
      {"VERIFY_IDENTITY", MysqlSslMode::kVerifyIdentity}};
  cmd->add_option("--mysql-ssl-mode", mysql.ssl_mode,
                  "TLS to MySQL, as mysql --ssl-mode: DISABLED; REQUIRED (encrypted, certificate not "
                  "checked); VERIFY_CA (signed by --mysql-ssl-ca); VERIFY_IDENTITY (signed, and naming "
                  "--mysql-host). Never falls back to plain text")
      ->transform(CLI::CheckedTransformer(kModes, CLI::ignore_case).description(""))
      ->default_str(MysqlSslModeName(mysql.ssl_mode));
  cmd->add_option("--mysql-ssl-ca", mysql.ssl_ca,
                  "PEM file of the CA that signs MySQL's certificate (VERIFY_IDENTITY without it: the "
                  "system's CAs)");
  cmd->add_option("--mysql-ssl-cert", mysql.ssl_cert, "PEM client certificate, for accounts that REQUIRE X509");
  cmd->add_option("--mysql-ssl-key", mysql.ssl_key, "PEM private key of --mysql-ssl-cert (a path, not the key)");
  if (database_help == nullptr) return nullptr;
  return cmd->add_option("--mysql-database", mysql.database, database_help);
}

void ReadMysqlPassword(MysqlOptions& mysql) {
  if (const char* password = std::getenv("M2M_MYSQL_PASSWORD")) mysql.password = password;
}

}  // namespace m2m::cli
