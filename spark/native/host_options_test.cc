#include "host_options.h"

#include <gtest/gtest.h>

namespace m2m::apply {
namespace {

TEST(SparkApplierOptionsTest, ReadsEverySettingAsText) {
  auto o = SparkApplierOptions({{"group", "spark-shop"}, {"host", "db"}, {"port", "3307"}, {"user", "u"},
                                {"password", "p"}, {"database", "shop"}, {"timeout_seconds", "5"},
                                {"ssl_mode", "verify_ca"}, {"ssl_ca", "/ca.pem"}, {"on_drop", "drop"},
                                {"on_rename", "keep"}, {"instant_add_column", "false"},
                                {"mongo_uri", "mongodb://m"}});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->group, "spark-shop");
  EXPECT_EQ(o->mysql.host, "db");
  EXPECT_EQ(o->mysql.port, 3307u);
  EXPECT_EQ(o->mysql.timeout_seconds, 5u);
  EXPECT_EQ(o->mysql.ssl_mode, MysqlSslMode::kVerifyCa);
  EXPECT_EQ(o->mysql.ssl_ca, "/ca.pem");
  EXPECT_EQ(o->mapping.options.on_drop, DropPolicy::kDrop);
  EXPECT_EQ(o->mapping.options.on_rename, RenamePolicy::kKeep);
  EXPECT_FALSE(o->sql.instant_add_column);
  ASSERT_TRUE(o->mongo.has_value());
  EXPECT_EQ(o->mongo->uri, "mongodb://m");
  // A Spark task cannot wait for another task's copy of a drop or rename.
  EXPECT_FALSE(o->wait_for_copies);
}

TEST(SparkApplierOptionsTest, FlagsOverrideTheMappingsPolicies) {
  auto o = SparkApplierOptions({{"mapping_yaml", "on_drop: drop\n"}, {"on_drop", "keep"}});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->mapping.options.on_drop, DropPolicy::kKeep);
}

TEST(SparkApplierOptionsTest, NamesTheSettingItRefuses) {
  for (auto [key, value, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"prot", "3306", "setting prot is not known"},
           {"port", "33o6", "port must be a non-negative integer, not \"33o6\""},
           {"ssl_mode", "on", "ssl_mode must be DISABLED"},
           {"on_drop", "delete", "on_drop must be keep or drop, not delete"},
           {"instant_add_column", "yes", "instant_add_column must be true or false"}}) {
    auto o = SparkApplierOptions({{key, value}});
    ASSERT_FALSE(o.ok()) << key;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(o.status().ToString().find(says), std::string::npos) << o.status().ToString();
  }
}

}  // namespace
}  // namespace m2m::apply
