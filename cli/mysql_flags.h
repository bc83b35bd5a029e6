// The MySQL connection flags shared by every subcommand that talks to MySQL (apply, verify, status,
// doctor, quarantine), declared in cli/settings.cc.
#pragma once

#include <CLI/CLI.hpp>

#include "m2m/mysql_client.h"
#include "settings.h"

namespace m2m::cli {

// Adds --mysql-host, --mysql-port, --mysql-user, the TLS options (--mysql-ssl-mode, -ssl-ca,
// -ssl-cert, -ssl-key) and, when `with_database`, --mysql-database (as `command` describes it) to `cmd`.
void AddMysqlOptions(CLI::App* cmd, Command command, MysqlOptions& mysql, bool with_database = true);

// The password never comes from argv (other users can read it in ps); it comes from the
// environment variable M2M_MYSQL_PASSWORD, when set.
void ReadMysqlPassword(MysqlOptions& mysql);

}  // namespace m2m::cli
