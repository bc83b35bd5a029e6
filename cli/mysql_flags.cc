#include "mysql_flags.h"

#include <cstdlib>

namespace m2m::cli {

CLI::Option* AddMysqlOptions(CLI::App* cmd, MysqlOptions& mysql, const char* database_help) {
  cmd->add_option("--mysql-host", mysql.host, "MySQL server")->capture_default_str();
  cmd->add_option("--mysql-port", mysql.port, "MySQL port")->capture_default_str();
  cmd->add_option("--mysql-user", mysql.user, "MySQL account (password: env M2M_MYSQL_PASSWORD)")
      ->capture_default_str();
  if (database_help == nullptr) return nullptr;
  return cmd->add_option("--mysql-database", mysql.database, database_help);
}

void ReadMysqlPassword(MysqlOptions& mysql) {
  if (const char* password = std::getenv("M2M_MYSQL_PASSWORD")) mysql.password = password;
}

}  // namespace m2m::cli
