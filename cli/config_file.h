// YAML configuration files for the subcommands.
//
// The keys of a config file are the subcommand's long option names, so the table of settings
// (cli/settings.cc) drives the command line, --help and the config file alike (docs/configuration.md);
// an unknown key is an error naming it, a secret one (mysql-password) names its environment variable. Nested maps join their keys with '-' (mysql: {host: h} is --mysql-host h), except
// `kafka:`, whose entries are librdkafka properties passed through as --kafka key=value. Values may
// name environment variables as ${NAME}: that is how secrets stay off the command line. A variable
// that is not set is an error naming the key and the variable. Options on the command line override
// the file.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "m2m/status.h"
#include "settings.h"

namespace m2m::cli {

// Adds the documented --config FILE option of `command` to `cmd`; call before the subcommand's other options.
void AddConfigOption(CLI::App* cmd, Command command);

// Replaces "--config FILE" (or --config=FILE) following a subcommand in `args` (argv without the
// program name) by the options the file sets, placed before the subcommand's own arguments.
Status ExpandConfigFile(const CLI::App& app, std::vector<std::string>& args);

}  // namespace m2m::cli
