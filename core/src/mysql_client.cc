#include "m2m/mysql_client.h"

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace m2m {

struct MysqlConnection::Handle {
  MYSQL mysql;
  ~Handle() { mysql_close(&mysql); }
};

namespace {

bool IsRetriable(unsigned err) {
  switch (err) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
    // The session was ended under the statement (KILL, a failover, a restart): a new one can redo it.
    case ER_SERVER_SHUTDOWN:
    case ER_QUERY_INTERRUPTED:
    case ER_CONNECTION_KILLED:  // MariaDB
    // A server just restarted, with every client of it reconnecting at once.
    case ER_CON_COUNT_ERROR:
    case 4031:                  // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+): closed while idle
      return true;
    default:
      return false;
  }
}

std::string Address(const MysqlOptions& o) { return "MySQL at " + o.host + ":" + std::to_string(o.port); }

// What the TLS settings demanded of the server, for errors that must say which check failed.
std::string TlsDemand(const MysqlOptions& o) {
  std::string ca = o.ssl_ca.empty() ? "a CA the system trusts" : "the CA in " + o.ssl_ca;
  std::string demand = "ssl mode " + std::string(MysqlSslModeName(o.ssl_mode));
  if (o.ssl_mode == MysqlSslMode::kVerifyIdentity) {
    demand += ": the server's certificate must be signed by " + ca + " and name " + o.host;
  } else if (!o.ssl_ca.empty()) {
    demand += ": the server's certificate must be signed by " + ca;
  }
  if (!o.ssl_cert.empty()) demand += "; client certificate " + o.ssl_cert;
  return demand;
}

// Fail closed: never fall back to plain text, whatever the server offers. Not retriable: the server
// has to be reconfigured, or the settings changed.
Status NoTlsError(const MysqlOptions& o) {
  return Status(StatusCode::kMysql,
                Address(o) + " does not offer TLS, which ssl mode " + MysqlSslModeName(o.ssl_mode) +
                    " requires; not connecting in plain text (enable TLS on the server: its ssl_cert and "
                    "ssl_key settings)",
                /*retriable=*/false, CR_SSL_CONNECTION_ERROR);
}

Status TlsError(const MysqlOptions& o, const char* cause) {
  if (std::strstr(cause, "server does not support it") != nullptr) return NoTlsError(o);
  return Status(StatusCode::kMysql,
                "TLS to " + Address(o) + " as " + o.user + " failed: " + cause + " (" + TlsDemand(o) + ")",
                /*retriable=*/false, CR_SSL_CONNECTION_ERROR);
}

Status CheckReadable(const char* what, const std::string& path) {
  if (path.empty() || access(path.c_str(), R_OK) == 0) return Status::OK();
  return Status::Invalid(std::string(what) + " " + path + " cannot be read: " + std::strerror(errno));
}

}  // namespace

const char* MysqlSslModeName(MysqlSslMode mode) {
  switch (mode) {
    case MysqlSslMode::kDisabled: return "DISABLED";
    case MysqlSslMode::kRequired: return "REQUIRED";
    case MysqlSslMode::kVerifyCa: return "VERIFY_CA";
    case MysqlSslMode::kVerifyIdentity: return "VERIFY_IDENTITY";
  }
  return "?";
}

Status MysqlOptions::Validate() const {
  if (host.empty()) return Status::Invalid("mysql.host is empty");
  if (port == 0 || port > 65535) return Status::Invalid("mysql.port must be 1..65535, got " + std::to_string(port));
  if (user.empty()) return Status::Invalid("mysql.user is empty");
  if (timeout_seconds == 0) return Status::Invalid("mysql.timeout_seconds must be positive");
  // A CA or certificate given with TLS off would read as protection that is not there.
  if (ssl_mode == MysqlSslMode::kDisabled && !(ssl_ca.empty() && ssl_cert.empty() && ssl_key.empty())) {
    return Status::Invalid("mysql.ssl_ca, ssl_cert or ssl_key is set while mysql.ssl_mode is DISABLED; set "
                           "ssl_mode (--mysql-ssl-mode) to VERIFY_IDENTITY, VERIFY_CA or REQUIRED");
  }
  if (ssl_mode == MysqlSslMode::kVerifyCa && ssl_ca.empty()) {
    return Status::Invalid("mysql.ssl_mode VERIFY_CA needs mysql.ssl_ca (--mysql-ssl-ca), the file of the CA "
                           "that signs the server's certificate");
  }
  if (ssl_cert.empty() != ssl_key.empty()) {
    return Status::Invalid("mysql.ssl_cert and mysql.ssl_key (--mysql-ssl-cert, --mysql-ssl-key) go together: "
                           "the client certificate and its private key");
  }
  M2M_RETURN_NOT_OK(CheckReadable("mysql.ssl_ca", ssl_ca));
  M2M_RETURN_NOT_OK(CheckReadable("mysql.ssl_cert", ssl_cert));
  return CheckReadable("mysql.ssl_key", ssl_key);
}

MysqlConnection::MysqlConnection(MysqlOptions options, std::unique_ptr<Handle> handle)
    : options_(std::move(options)), handle_(std::move(handle)) {}

MysqlConnection::~MysqlConnection() = default;

Result<std::unique_ptr<MysqlConnection>> MysqlConnection::Connect(const MysqlOptions& options) {
  M2M_RETURN_NOT_OK(options.Validate());
  auto handle = std::make_unique<Handle>();
  if (mysql_init(&handle->mysql) == nullptr) return Status::Internal("mysql_init failed: out of memory");
  MYSQL* m = &handle->mysql;
  unsigned timeout = options.timeout_seconds;
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
  mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
  mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  // Statements are sent as they are written; a lost connection must surface, not be silently redone
  // outside the transaction it belonged to.
  my_bool reconnect = 0;
  mysql_options(m, MYSQL_OPT_RECONNECT, &reconnect);
  const bool tls = options.ssl_mode != MysqlSslMode::kDisabled;
  if (tls) {
    // libmariadb verifies the chain whenever a CA is given, and the host name (and refuses a server
    // without TLS before authenticating) with VERIFY_SERVER_CERT.
    my_bool enforce = 1, verify_host = options.ssl_mode == MysqlSslMode::kVerifyIdentity;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &enforce);
    mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify_host);
    if (!options.ssl_ca.empty()) mysql_optionsv(m, MYSQL_OPT_SSL_CA, options.ssl_ca.c_str());
    if (!options.ssl_cert.empty()) {
      mysql_optionsv(m, MYSQL_OPT_SSL_CERT, options.ssl_cert.c_str());
      mysql_optionsv(m, MYSQL_OPT_SSL_KEY, options.ssl_key.c_str());
    }
  }
  const char* db = options.database.empty() ? nullptr : options.database.c_str();
  if (mysql_real_connect(m, options.host.c_str(), options.user.c_str(), options.password.c_str(), db,
                         options.port, nullptr, CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS) == nullptr) {
    unsigned err = mysql_errno(m);
    if (tls && err == CR_SSL_CONNECTION_ERROR) return TlsError(options, mysql_error(m));
    return Status(StatusCode::kMysql, "cannot connect to " + Address(options) + " as " + options.user + ": " +
                                          mysql_error(m),
                  IsRetriable(err), err);
  }
  // libmariadb 3.3 goes on in plain text when the server offers no TLS, unless it verifies the host
  // name: refuse the connection here. The login has been exchanged by then; only VERIFY_IDENTITY
  // keeps it from an attacker who strips TLS from the server's greeting (docs/operations.md, "TLS").
  if (tls && mysql_get_ssl_cipher(m) == nullptr) return NoTlsError(options);
  // UTC everywhere: DATETIME values written by apply are UTC instants.
  auto conn = std::unique_ptr<MysqlConnection>(new MysqlConnection(options, std::move(handle)));
  M2M_RETURN_NOT_OK(conn->Execute(std::string("SET time_zone = '+00:00', sql_mode = '") + kSessionSqlMode + "'"));
  M2M_ASSIGN_OR_RETURN(auto packet, conn->Query("SELECT @@max_allowed_packet"));
  if (packet.size() == 1 && packet[0].size() == 1 && packet[0][0]) {
    conn->max_allowed_packet_ = std::stoull(*packet[0][0]);
  }
  return conn;
}

Status MysqlConnection::LastError(std::string_view what) const {
  MYSQL* m = &handle_->mysql;
  unsigned err = mysql_errno(m);
  std::string message(what);
  message += ": ";
  message += mysql_error(m);
  message += " (errno " + std::to_string(err) + ")";
  return Status(StatusCode::kMysql, std::move(message), IsRetriable(err), err);
}

// A statement travels as one command packet: its text and a command byte. A server that reads one
// larger than its max_allowed_packet answers ER_NET_PACKET_TOO_LARGE and closes the connection,
// which the client sees as a lost connection (retriable) while the statement would fail again every
// time; refusing it here gives the real cause and keeps the connection.
Status MysqlConnection::CheckSize(std::string_view sql) const {
  if (max_allowed_packet_ == 0 || sql.size() + 1 < max_allowed_packet_) return Status::OK();
  return Status(StatusCode::kMysql,
                "a statement of " + std::to_string(sql.size()) + " bytes does not fit in the server's "
                    "max_allowed_packet of " + std::to_string(max_allowed_packet_) +
                    " bytes; raise it to more than " + std::to_string(sql.size() + 1) +
                    " (SET GLOBAL max_allowed_packet = 1073741824, and max_allowed_packet in the server's "
                    "configuration file; at most 1 GiB)",
                /*retriable=*/false, ER_NET_PACKET_TOO_LARGE);
}

Status MysqlConnection::Execute(std::string_view sql) {
  M2M_RETURN_NOT_OK(CheckSize(sql));
  MYSQL* m = &handle_->mysql;
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) return LastError("statement failed");
  affected_rows_ = 0;
  // Drain every result of a multi-statement batch so the connection is usable afterwards.
  while (true) {
    MYSQL_RES* res = mysql_store_result(m);
    if (res != nullptr) {
      mysql_free_result(res);
    } else if (mysql_field_count(m) == 0) {
      affected_rows_ += mysql_affected_rows(m);
    } else {
      return LastError("reading result failed");
    }
    int next = mysql_next_result(m);
    if (next == -1) break;
    if (next > 0) return LastError("statement in batch failed");
  }
  return Status::OK();
}

Result<std::vector<MysqlConnection::Row>> MysqlConnection::Query(std::string_view sql) {
  M2M_RETURN_NOT_OK(CheckSize(sql));
  MYSQL* m = &handle_->mysql;
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) return LastError("query failed");
  MYSQL_RES* res = mysql_store_result(m);
  if (res == nullptr) {
    if (mysql_field_count(m) == 0) return std::vector<Row>{};
    return LastError("reading result failed");
  }
  std::vector<Row> rows;
  unsigned n = mysql_num_fields(res);
  while (MYSQL_ROW r = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    Row row;
    row.reserve(n);
    for (unsigned i = 0; i < n; ++i) {
      if (r[i] == nullptr) row.emplace_back(std::nullopt);
      else row.emplace_back(std::string(r[i], lengths[i]));
    }
    rows.push_back(std::move(row));
  }
  mysql_free_result(res);
  while (mysql_next_result(m) == 0) {
    if (MYSQL_RES* extra = mysql_store_result(m)) mysql_free_result(extra);
  }
  return rows;
}

std::string MysqlConnection::tls_cipher() const {
  const char* cipher = mysql_get_ssl_cipher(&handle_->mysql);
  return cipher ? cipher : "";
}

std::string MysqlConnection::QuoteString(std::string_view value) const {
  std::string out(value.size() * 2 + 3, '\0');
  out[0] = '\'';
  unsigned long n = mysql_real_escape_string(&handle_->mysql, out.data() + 1, value.data(), value.size());
  out[n + 1] = '\'';
  out.resize(n + 2);
  return out;
}

}  // namespace m2m
