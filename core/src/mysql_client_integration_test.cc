// Needs the local stack (make up): writes and reads real rows in MariaDB.
#include "m2m/mysql_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "m2m/identifiers.h"
#include "test_env.h"
#include "test_source_dir.h"

namespace m2m {
namespace {

class MysqlClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conn = MysqlConnection::Connect(testing::StackMysqlOptions());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    conn_ = std::move(*conn);
    db_ = testing::UniqueName("t_mysql");
    ASSERT_TRUE(conn_->Execute("CREATE DATABASE `" + db_ + "`; USE `" + db_ + "`").ok());
  }
  void TearDown() override {
    if (conn_) (void)conn_->Execute("DROP DATABASE IF EXISTS `" + db_ + "`");
  }
  std::unique_ptr<MysqlConnection> conn_;
  std::string db_;
};

TEST_F(MysqlClientTest, WritesAndReadsARow) {
  ASSERT_TRUE(conn_->Execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT, note TEXT)").ok());
  std::string tricky = "O'Brien \"\\ \xE2\x9C\x93";
  ASSERT_TRUE(conn_->Execute("INSERT INTO t VALUES (1, " + conn_->QuoteString(tricky) + ", NULL)").ok());
  EXPECT_EQ(conn_->affected_rows(), 1u);
  auto rows = conn_->Query("SELECT id, name, note FROM t");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0][0], "1");
  EXPECT_EQ((*rows)[0][1], tricky);
  EXPECT_EQ((*rows)[0][2], std::nullopt);
}

TEST_F(MysqlClientTest, RollbackDiscardsAndMultiStatementCountsRows) {
  ASSERT_TRUE(conn_->Execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB").ok());
  ASSERT_TRUE(conn_->Begin().ok());
  ASSERT_TRUE(conn_->Execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2),(3)").ok());
  EXPECT_EQ(conn_->affected_rows(), 3u);
  ASSERT_TRUE(conn_->Rollback().ok());
  auto rows = conn_->Query("SELECT COUNT(*) FROM t");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[0][0], "0");
}

TEST_F(MysqlClientTest, ErrorsKeepTheServerErrno) {
  Status st = conn_->Execute("INSERT INTO no_such_table VALUES (1)");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kMysql);
  EXPECT_EQ(st.native_code(), 1146);  // ER_NO_SUCH_TABLE
  EXPECT_FALSE(st.retriable());
  EXPECT_NE(st.message().find("no_such_table"), std::string::npos);
}

TEST_F(MysqlClientTest, EverySessionHasTheSqlModeTheGeneratedSqlNeeds) {
  // Whatever the server's default (a DBA may set NO_BACKSLASH_ESCAPES or ANSI_QUOTES globally), the
  // session's mode is ours; tests/integration/test_sql_mode.py runs a server with such a default.
  auto mode = conn_->Query("SELECT @@SESSION.sql_mode");
  ASSERT_TRUE(mode.ok()) << mode.status().ToString();
  EXPECT_EQ((*mode)[0][0], kSessionSqlMode);
  // Backslash escapes are escapes: a quote after a backslash cannot end the literal.
  ASSERT_TRUE(conn_->Execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)").ok());
  std::string hostile = "x\\' OR 1=1; DROP TABLE t; -- \"";
  ASSERT_TRUE(conn_->Execute("INSERT INTO t VALUES (1, " + QuoteString(hostile) + ")").ok());
  auto rows = conn_->Query("SELECT name FROM t WHERE name = " + QuoteString(hostile));
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0][0], hostile);
}

TEST_F(MysqlClientTest, AStatementOverMaxAllowedPacketIsRefusedBeforeSendingAndTheConnectionStays) {
  auto rows = conn_->Query("SELECT @@max_allowed_packet");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(conn_->max_allowed_packet(), std::stoull(*(*rows)[0][0]));
  // Its text and the command byte make exactly max_allowed_packet bytes: one too many.
  std::string sql = "SELECT 1 -- ";
  sql.resize(conn_->max_allowed_packet() - 1, 'x');
  Status st = conn_->Execute(sql);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.native_code(), 1153);  // ER_NET_PACKET_TOO_LARGE
  EXPECT_FALSE(st.retriable());
  EXPECT_NE(st.message().find("max_allowed_packet of " + std::to_string(conn_->max_allowed_packet())),
            std::string::npos) << st.message();
  EXPECT_FALSE(conn_->Query(sql).ok());
  auto still = conn_->Query("SELECT 2");
  ASSERT_TRUE(still.ok()) << still.status().ToString();
  EXPECT_EQ((*still)[0][0], "2");
}

TEST(MysqlConnectTest, UnreachableServerIsRetriableAndNamesTheAddress) {
  MysqlOptions o = testing::StackMysqlOptions();
  o.port = 1;  // nothing listens on port 1
  o.timeout_seconds = 5;
  auto conn = MysqlConnection::Connect(o);
  ASSERT_FALSE(conn.ok());
  EXPECT_TRUE(conn.status().retriable());
  EXPECT_NE(conn.status().message().find(":1 "), std::string::npos) << conn.status().message();
}

// The stack's CA (stack/ctl.sh makes it when it starts MariaDB), or empty when its MariaDB predates TLS.
std::string StackCa() {
  std::string ca = testing::Env("M2M_STATE", (std::string(testing::kSourceDir) + "/.stack").c_str()) + "/tls/ca.pem";
  return access(ca.c_str(), R_OK) == 0 ? ca : "";
}

TEST(MysqlConnectTest, VerifiedTlsEncryptsTheSession) {
  MysqlOptions o = testing::StackMysqlOptions();
  o.ssl_ca = StackCa();
  if (o.ssl_ca.empty()) GTEST_SKIP() << "the stack's MariaDB serves no TLS: 'make down && make up' restarts it with TLS";
  o.ssl_mode = MysqlSslMode::kVerifyIdentity;
  auto conn = MysqlConnection::Connect(o);
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  EXPECT_FALSE((*conn)->tls_cipher().empty());
  auto cipher = (*conn)->Query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");  // the server's view
  ASSERT_TRUE(cipher.ok()) << cipher.status().ToString();
  EXPECT_EQ((*cipher)[0][1], (*conn)->tls_cipher());
}

TEST(MysqlConnectTest, VerifyIdentityWithoutACaTrustsOnlyTheSystemsCas) {
  MysqlOptions o = testing::StackMysqlOptions();
  if (StackCa().empty()) GTEST_SKIP() << "the stack's MariaDB serves no TLS: 'make down && make up' restarts it with TLS";
  o.ssl_mode = MysqlSslMode::kVerifyIdentity;  // the stack's CA is not one of them
  auto conn = MysqlConnection::Connect(o);
  ASSERT_FALSE(conn.ok());
  EXPECT_FALSE(conn.status().retriable());
  EXPECT_NE(conn.status().message().find("a CA the system trusts"), std::string::npos) << conn.status().message();
}

}  // namespace
}  // namespace m2m
