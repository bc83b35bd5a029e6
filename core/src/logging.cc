#include "m2m/logging.h"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <memory>

namespace m2m {
namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(LogFields fields) : fields_(std::move(fields)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    std::string line = JsonLogLine(msg.time, std::string_view(level.data(), level.size()),
                                   std::string_view(msg.payload.data(), msg.payload.size()), fields_);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(fields_); }

 private:
  const LogFields fields_;
};

}  // namespace

Result<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return Status::Invalid("log format '" + std::string(name) + "': expected text or json");
}

std::string JsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message, const LogFields& fields) {
  using namespace std::chrono;
  const auto micros = duration_cast<microseconds>(time.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[40];
  size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + n, sizeof stamp - n, ".%06lldZ", static_cast<long long>(micros % 1'000'000));
  nlohmann::ordered_json line;
  line["time"] = stamp;
  line["level"] = level;
  line["message"] = message;
  for (const auto& [key, value] : fields) line[key] = value;
  // A message cut inside a UTF-8 sequence (or carrying raw bytes) is still one valid line.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status ConfigureLogging(const LogOptions& options) {
  const spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  // from_str answers "off" for any name it does not know; only "off" itself means that.
  if (level == spdlog::level::off && options.level != "off") {
    return Status::Invalid("log level '" + options.level + "': expected trace, debug, info, warn, error or off");
  }
  spdlog::sink_ptr sink;
  if (options.format == LogFormat::kJson) {  // plain sinks: colour codes would corrupt the JSON
    if (options.to_stderr) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    else sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    sink->set_formatter(std::make_unique<JsonFormatter>(options.fields));
  } else {
    if (options.to_stderr) sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    else sink = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>("", std::move(sink));
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
  return Status::OK();
}

}  // namespace m2m
