// How the processes log. Every library logs through spdlog's default logger, so configuring that once
// at start-up sets the format and level of all of them: text for people, or JSON lines for log
// collectors (one object a line: time, level, message and the process's fields).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "m2m/status.h"

namespace m2m {

enum class LogFormat { kText, kJson };

// Fields every JSON line carries besides time, level and message, in this order.
using LogFields = std::vector<std::pair<std::string, std::string>>;

struct LogOptions {
  // Default: kText
  LogFormat format = LogFormat::kText;
  // The least severe level logged: trace, debug, info, warn, error or off. Default: info
  std::string level = "info";
  // Log to stderr instead of stdout, for commands whose stdout is their report. Default: false
  bool to_stderr = false;
  // e.g. {{"command", "apply"}, {"group", "shop"}}. Default: none
  LogFields fields;
};

// "text" or "json"; anything else is an error naming it.
Result<LogFormat> ParseLogFormat(std::string_view name);

// Replaces spdlog's default logger by one that writes as `options` say. Call it before other threads
// log: spdlog's default logger is not meant to be swapped while in use.
Status ConfigureLogging(const LogOptions& options);

// One line of LogFormat::kJson, without the newline: {"time":"2026-12-03T07:20:04.123456Z",
// "level":"info","message":"...",<fields>}. The time is UTC with microseconds.
std::string JsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message, const LogFields& fields);

}  // namespace m2m
