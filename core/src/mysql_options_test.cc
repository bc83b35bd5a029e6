// MysqlOptions::Validate's TLS rules: settings that would promise protection they do not give are errors.
#include <gtest/gtest.h>

#include "m2m/mysql_client.h"

namespace m2m {
namespace {

std::string Problem(const MysqlOptions& o) { return o.Validate().message(); }

TEST(MysqlOptions, ACaOrCertificateWithTlsDisabledIsAnError) {
  MysqlOptions o;
  o.ssl_ca = "/etc/hostname";
  EXPECT_NE(Problem(o).find("ssl_mode is DISABLED"), std::string::npos) << Problem(o);
  o.ssl_mode = MysqlSslMode::kRequired;
  EXPECT_TRUE(o.Validate().ok()) << Problem(o);
}

TEST(MysqlOptions, VerifyCaNeedsACaFile) {
  MysqlOptions o;
  o.ssl_mode = MysqlSslMode::kVerifyCa;
  EXPECT_NE(Problem(o).find("VERIFY_CA needs mysql.ssl_ca"), std::string::npos) << Problem(o);
  o.ssl_mode = MysqlSslMode::kVerifyIdentity;  // the system's CAs
  EXPECT_TRUE(o.Validate().ok()) << Problem(o);
}

TEST(MysqlOptions, CertificateAndKeyGoTogetherAndMustBeReadable) {
  MysqlOptions o;
  o.ssl_mode = MysqlSslMode::kRequired;
  o.ssl_cert = "/etc/hostname";
  EXPECT_NE(Problem(o).find("go together"), std::string::npos) << Problem(o);
  o.ssl_key = "/nonexistent/client-key.pem";
  EXPECT_EQ(Problem(o), "mysql.ssl_key /nonexistent/client-key.pem cannot be read: No such file or directory");
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace m2m
