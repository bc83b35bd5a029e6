// The MySQL connection flags shared by every subcommand that talks to MySQL (apply, verify, status,
// doctor), so they are spelled, documented and defaulted once.
#pragma once

#include <CLI/CLI.hpp>

#include "m2m/mysql_client.h"

namespace m2m::cli {

// Adds --mysql-host, --mysql-port, --mysql-user and the TLS options (--mysql-ssl-mode, -ssl-ca,
// -ssl-cert, -ssl-key) to `cmd`, and --mysql-database described by
// `database_help` unless it is null. Returns the --mysql-database option (null if not added) so
// the caller can make it required.
CLI::Option* AddMysqlOptions(CLI::App* cmd, MysqlOptions& mysql, const char* database_help);

// The password never comes from argv (other users can read it in ps); it comes from the
// environment variable M2M_MYSQL_PASSWORD, when set.
void ReadMysqlPassword(MysqlOptions& mysql);

}  // namespace m2m::cli
