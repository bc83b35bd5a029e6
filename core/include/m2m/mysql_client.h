// A MySQL/MariaDB connection: the one place where libmariadb is called.
//
// Every failure comes back as a Status with code kMysql, the server's errno as native_code, and
// retriable() set for errors that a reconnect or a retry of the transaction can cure (lost connection,
// deadlock, lock wait timeout).
//
// Thread safety: a connection is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "m2m/status.h"

namespace m2m {

// How a connection uses TLS; the names and meanings of MySQL's and MariaDB's clients' --ssl-mode.
enum class MysqlSslMode {
  kDisabled,        // plain TCP
  kRequired,        // encrypted, the server's certificate not checked: protects against listening only
  kVerifyCa,        // encrypted, the certificate signed by ssl_ca (any host name)
  kVerifyIdentity,  // encrypted, signed by ssl_ca (or a CA the system trusts) and naming `host`
};

// "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY".
const char* MysqlSslModeName(MysqlSslMode mode);

struct MysqlOptions {
  // Server address. Default: 127.0.0.1
  std::string host = "127.0.0.1";
  // Server TCP port. Default: 3306
  unsigned port = 3306;
  // Account. Default: mongo2mysql
  std::string user = "mongo2mysql";
  // Password; never taken from argv (use a config file with ${ENV} interpolation). Default: empty
  std::string password;
  // Database selected on connect; empty selects none. Default: empty
  std::string database;
  // Seconds to wait for the TCP connect and for each read or write. Default: 30
  unsigned timeout_seconds = 30;
  // TLS. Any mode but kDisabled fails closed: a server that offers no TLS, or whose certificate does
  // not verify, is a non-retriable error naming the server, the CA file and the cause, never a plain
  // connection. Default: kDisabled
  MysqlSslMode ssl_mode = MysqlSslMode::kDisabled;
  // PEM file of the CA(s) that sign the server's certificate; required by kVerifyCa, optional for
  // kVerifyIdentity (empty: the CAs the system trusts). Default: empty
  std::string ssl_ca;
  // PEM client certificate and its unencrypted private key, presented to servers whose accounts
  // REQUIRE X509; both or neither. Default: empty
  std::string ssl_cert;
  std::string ssl_key;

  Status Validate() const;
};

// Every session's sql_mode, whatever the server's default: the SQL the product writes (identifiers.h)
// means one thing only under it. Literals escape with backslashes (NO_BACKSLASH_ESCAPES would end
// them early: SQL injection through any value), strings are in single quotes and identifiers in
// backticks (ANSI_QUOTES would read "..." as names), '' stays a string (MariaDB's EMPTY_STRING_IS_NULL
// would make it NULL), || is OR, fractions are truncated the same on every server, and a value that
// does not fit is an error (strict), which apply quarantines, never a silent truncation. The modes
// named exist with the same meaning on MySQL 5.7-8.x and MariaDB 10.x-11.x.
inline constexpr char kSessionSqlMode[] = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

class MysqlConnection {
 public:
  using Row = std::vector<std::optional<std::string>>;  // NULL is nullopt

  static Result<std::unique_ptr<MysqlConnection>> Connect(const MysqlOptions& options);
  ~MysqlConnection();
  MysqlConnection(const MysqlConnection&) = delete;
  MysqlConnection& operator=(const MysqlConnection&) = delete;

  // Runs one or more statements that return no rows. Text the server would refuse for its size
  // (max_allowed_packet() or more) is not sent: the error (ER_NET_PACKET_TOO_LARGE, not retriable)
  // names both sizes, and the connection stays usable.
  Status Execute(std::string_view sql);
  // Runs one statement and returns all its rows as text. The same size check as Execute.
  Result<std::vector<Row>> Query(std::string_view sql);
  // Rows changed by the last Execute.
  uint64_t affected_rows() const { return affected_rows_; }

  Status Begin() { return Execute("START TRANSACTION"); }
  Status Commit() { return Execute("COMMIT"); }
  Status Rollback() { return Execute("ROLLBACK"); }

  // A string literal, quoted and escaped for this connection's character set: 'it''s'.
  std::string QuoteString(std::string_view value) const;

  const MysqlOptions& options() const { return options_; }
  // The TLS cipher in use, or empty for a plain connection.
  std::string tls_cipher() const;
  // The session's max_allowed_packet, read on connect: the largest statement the server accepts,
  // in bytes, less one.
  uint64_t max_allowed_packet() const { return max_allowed_packet_; }

 private:
  struct Handle;
  MysqlConnection(MysqlOptions options, std::unique_ptr<Handle> handle);
  Status LastError(std::string_view what) const;
  Status CheckSize(std::string_view sql) const;

  MysqlOptions options_;
  std::unique_ptr<Handle> handle_;
  uint64_t affected_rows_ = 0;
  uint64_t max_allowed_packet_ = 0;  // 0 until read: no check
};

}  // namespace m2m
