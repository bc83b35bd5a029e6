#include "m2m/logging.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace m2m {
namespace {

TEST(JsonLogLineTest, IsOneJsonObjectWithTimeLevelMessageAndFieldsInOrder) {
  const auto time = std::chrono::system_clock::time_point(std::chrono::microseconds(1796282404123456));
  std::string line = JsonLogLine(time, "warn", "apply shop: \"quoted\"\nsecond line", {{"command", "apply"},
                                                                                        {"group", "shop"}});
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_EQ(line,
            R"({"time":"2026-12-03T07:20:04.123456Z","level":"warn","message":"apply shop: \"quoted\"\nsecond line",)"
            R"("command":"apply","group":"shop"})");
}

TEST(JsonLogLineTest, InvalidUtf8StaysOneValidLine) {
  std::string line = JsonLogLine(std::chrono::system_clock::time_point(), "info", "cut \xE2\x82", {});
  std::string message = nlohmann::json::parse(line)["message"];
  EXPECT_EQ(message.rfind("cut ", 0), 0u) << line;
}

TEST(ConfigureLoggingTest, RefusesUnknownFormatsAndLevels) {
  EXPECT_FALSE(ParseLogFormat("xml").ok());
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  Status st = ConfigureLogging({.level = "verbose"});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("verbose"), std::string::npos) << st.ToString();
  EXPECT_TRUE(ConfigureLogging({.level = "off"}).ok());
}

}  // namespace
}  // namespace m2m
