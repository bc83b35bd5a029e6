#include "m2m/table_schema.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace m2m {
namespace {

// PathSource writes plain names directly; the bytes must stay those of the JSON dump that existing
// tables' comments were written with, or fields would no longer find their columns.
TEST(PathSource, PlainNamesGiveTheBytesOfTheJsonDump) {
  std::vector<std::vector<std::string>> paths = {
      {"a"}, {"customer", "address", "zip"}, {"with space", "dots.in.name", "$dollar", "~!@#%^&*()-+={}[]|;:'<>,.?/`"},
      {""}, {"", ""}};
  for (const auto& path : paths) {
    EXPECT_EQ(PathSource(path), nlohmann::json(path).dump()) << nlohmann::json(path).dump();
  }
}

TEST(PathSource, OtherNamesAreEscapedAsInColumnComments) {
  EXPECT_EQ(PathSource({"quote\"d", "back\\slash"}), R"(["quote\"d","back\\slash"])");
  EXPECT_EQ(PathSource({"tab\there"}), R"(["tab\there"])");
  EXPECT_EQ(PathSource({"caf\xC3\xA9"}), "[\"caf\xC3\xA9\"]");
  // Beyond the Basic Multilingual Plane: \u escapes (MariaDB's comments are 3-byte UTF-8).
  EXPECT_EQ(PathSource({"\xF0\x9F\x9A\x9A"}), R"(["\ud83d\ude9a"])");
}

// TableSource too: table comments hold these bytes.
TEST(TableSource, PlainNamesGiveTheBytesOfTheJsonDumpOthersAreEscaped) {
  using Levels = std::vector<std::vector<std::string>>;
  for (const Levels& levels : {Levels{}, Levels{{"items"}}, Levels{{"a", "b"}, {}, {"c"}}, Levels{{""}}}) {
    nlohmann::json j = nlohmann::json::array({"orders"});
    for (const auto& level : levels) j.push_back(level);
    EXPECT_EQ(TableSource("orders", levels), j.dump()) << j.dump();
  }
  EXPECT_EQ(TableSource("quote\"d", {{"x"}}), R"(["quote\"d",["x"]])");
  EXPECT_EQ(TableSource("c", {{"back\\slash"}, {"\xF0\x9F\x9A\x9A"}}), R"(["c",["back\\slash"],["\ud83d\ude9a"]])");
}

TEST(Catalog, CollectionTablesFollowsTablesAddedAndRemoved) {
  Catalog catalog;
  catalog.Add({"orders", TableSource("orders", {}), {}, {}, true});
  catalog.Add({"orders_items", TableSource("orders", {{"items"}}), {}, {}, true});
  catalog.Add({"users", TableSource("users", {}), {}, {}, true});
  catalog.Add({"legacy", "not a source", {}, {}, true});
  auto names = [&](std::string_view collection) {
    std::vector<std::string> out;
    for (const TableSchema* t : catalog.CollectionTables(collection)) out.push_back(t->name);
    return out;
  };
  EXPECT_EQ(names("orders"), (std::vector<std::string>{"orders", "orders_items"}));
  catalog.Remove("orders_items");
  catalog.Add({"users_tags", TableSource("users", {{"tags"}}), {}, {}, true});
  EXPECT_EQ(names("orders"), (std::vector<std::string>{"orders"}));
  EXPECT_EQ(names("users"), (std::vector<std::string>{"users", "users_tags"}));
  EXPECT_TRUE(names("not a source").empty());
}

}  // namespace
}  // namespace m2m
