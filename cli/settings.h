// The one table of settings: every option of every command, and of the Spark job, declared once with
// its name, type, default, meaning, environment variable and the Debezium MongoDB connector's name
// for it. It drives the CLI11 options (AddSetting), so --help, the defaults and the environment
// variables come from here; the config-file keys, which are the option names (config_file.h); the
// Spark job's options (spark/m2m_spark/settings_table.py, generated); and docs/configuration.md
// (generated). `mongo2mysql settings` prints the generated files; a ctest fails when the committed
// ones are stale (cli/CMakeLists.txt, target settings-reference regenerates them).
//
// A name may have several rows when its meaning differs between commands (--max-batch-ms is a Kafka
// transaction's time for capture, a MySQL transaction's for apply); each (command, name) has one.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace m2m::cli {

// Where a setting is used; a row's `commands` is a set of these.
enum Command : uint32_t {
  kCapture = 1 << 0,
  kApply = 1 << 1,
  kSpark = 1 << 2,  // the PySpark job, python -m m2m_spark.job
  kStatus = 1 << 3,
  kVerify = 1 << 4,
  kDoctor = 1 << 5,
  kPreview = 1 << 6,
  kQuarantine = 1 << 7,
};

enum class SettingType {
  kString,
  kInt,
  kNumber,  // a decimal number
  kFlag,    // present or not; true/false in a config file
  kList,    // repeatable; a YAML list in a config file
  kChoice,  // one of `choices`
  kKeyValue,  // repeatable key=value; a YAML map in a config file
  kSecret,  // environment only: never an option (argv is visible to every user of the machine)
};

struct Setting {
  std::string_view name;  // the long option and config-file key, without "--"
  uint32_t commands;      // the Command values using this row
  SettingType type;
  std::string_view default_value;  // as shown and parsed; empty: none (the meaning says what then)
  std::string_view meaning;
  std::string_view choices = {};   // kChoice: the values, separated by '|'
  std::string_view env = {};       // an environment variable that sets it when neither argv nor a config file does
  std::string_view debezium = {};  // the Debezium MongoDB connector's property for the same thing
  std::string_view section = {};   // heading in docs/configuration.md and group in the Spark job's --help
  bool required = false;
  std::string_view old_names = {};  // earlier names, still accepted, separated by '|'
};

// Every row, in documentation order.
std::span<const Setting> Settings();

// The row of `name` for `command`; aborts naming both when there is none (a programming error that
// any test running the command finds).
const Setting& FindSetting(std::string_view name, Command command);

// The CLI11 option of `setting` bound to nothing (a caller reads it with ->count() and ->as<T>()).
CLI::Option* AddSetting(CLI::App* cmd, Command command, std::string_view name);

namespace detail {
// Sets what the table says on `option`; `check_choices` false when the caller converts the values itself.
CLI::Option* Declare(const Setting& s, CLI::Option* option, bool check_choices);
std::string FlagName(const Setting& s);
// Remembers a compiled-in default that disagrees with the table's, for `mongo2mysql settings` to report.
void DefaultMismatch(const Setting& s, std::string bound);
}  // namespace detail

// Adds the option of `name` for `command` to `cmd`, bound to `var`: help text, default, allowed values,
// environment variable, old names and required-ness from the table (an enum `var` checks its
// values itself, e.g. with a CLI::CheckedTransformer). The table's default is stored in
// `var`; a different default already there (an options struct's `Default:`) is reported by
// `mongo2mysql settings` and so fails the reference test, keeping the two from drifting.
template <typename T>
CLI::Option* AddSetting(CLI::App* cmd, Command command, std::string_view name, T& var) {
  const Setting& s = FindSetting(name, command);
  CLI::Option* option;
  if constexpr (std::is_same_v<T, bool>) {
    option = cmd->add_flag(detail::FlagName(s), var, std::string(s.meaning));
  } else {
    option = cmd->add_option(detail::FlagName(s), var, std::string(s.meaning));
    if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
      if (!s.default_value.empty()) {
        T table{};
        CLI::detail::lexical_cast(std::string(s.default_value), table);
        if (!(var == T{}) && !(var == table)) {
          detail::DefaultMismatch(s, CLI::detail::checked_to_string<T, T>(var));
        }
        var = table;
      }
    }
  }
  return detail::Declare(s, option, !std::is_enum_v<T>);
}

}  // namespace m2m::cli
