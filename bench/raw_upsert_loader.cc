// The baseline for bench/apply_bench.py: how fast this MariaDB takes the rows apply writes when
// nothing but multi-row INSERT ... ON DUPLICATE KEY UPDATE is sent, one transaction per batch, over
// the same client library. Rows are shaped like the benchmark's documents (a root row of about
// 0.5 KB with flattened sub-document columns, and 1-3 child rows), keys drawn from the same range,
// so the server does the same index work as for apply's upserts.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "m2m/mysql_client.h"

namespace {

m2m::Status Load(m2m::MysqlOptions o, int64_t rows, int batch, int documents) {
  M2M_ASSIGN_OR_RETURN(auto conn, m2m::MysqlConnection::Connect(o));
  M2M_RETURN_NOT_OK(conn->Execute(
      "CREATE TABLE IF NOT EXISTS raw_docs (`_id` BIGINT NOT NULL PRIMARY KEY, name VARCHAR(255), n INT, "
      "address_city VARCHAR(255), address_zip VARCHAR(255), pad TEXT, note VARCHAR(255)) "
      "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"));
  M2M_RETURN_NOT_OK(conn->Execute(
      "CREATE TABLE IF NOT EXISTS raw_docs_items (`_id` BIGINT NOT NULL, `_idx1` BIGINT NOT NULL, sku VARCHAR(255), "
      "qty INT, PRIMARY KEY (`_id`, `_idx1`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"));
  std::mt19937_64 rng(42);
  const std::string pad(300, 'x');
  auto started = std::chrono::steady_clock::now();
  for (int64_t done = 0; done < rows;) {
    std::string root, items;
    for (int k = 0; k < batch && done < rows; ++k, ++done) {
      int64_t id = static_cast<int64_t>(rng() % documents);
      root += fmt::format("{}({},'doc {} v{}',{},'city{}','{:05d}','{}',NULL)", root.empty() ? "" : ",", id, id, done,
                          done, done % 7, id, pad);
      for (int i = 0; i < 1 + static_cast<int>(rng() % 3); ++i) {
        items += fmt::format("{}({},{},'s{}-{}',{})", items.empty() ? "" : ",", id, i, id, i, done + i);
      }
    }
    M2M_RETURN_NOT_OK(conn->Begin());
    M2M_RETURN_NOT_OK(conn->Execute(
        "INSERT INTO raw_docs (`_id`,name,n,address_city,address_zip,pad,note) VALUES " + root +
        " ON DUPLICATE KEY UPDATE name=VALUES(name),n=VALUES(n),address_city=VALUES(address_city),"
        "address_zip=VALUES(address_zip),pad=VALUES(pad),note=VALUES(note)"));
    M2M_RETURN_NOT_OK(conn->Execute("INSERT INTO raw_docs_items (`_id`,`_idx1`,sku,qty) VALUES " + items +
                                    " ON DUPLICATE KEY UPDATE sku=VALUES(sku),qty=VALUES(qty)"));
    M2M_RETURN_NOT_OK(conn->Commit());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("rows=%lld seconds=%.3f rate=%.0f\n", static_cast<long long>(rows), secs, rows / secs);
  return m2m::Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Multi-row upserts of benchmark-shaped rows into MySQL, as fast as the server takes them.");
  m2m::MysqlOptions o;
  int64_t rows = 100000;
  int batch = 5000;
  int documents = 20000;
  app.add_option("--mysql-host", o.host)->capture_default_str();
  app.add_option("--mysql-port", o.port)->capture_default_str();
  app.add_option("--mysql-user", o.user)->capture_default_str();
  app.add_option("--mysql-database", o.database)->required();
  app.add_option("--rows", rows, "Root rows to upsert")->capture_default_str();
  app.add_option("--batch", batch, "Rows per statement and transaction")->capture_default_str();
  app.add_option("--documents", documents, "Distinct keys")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (const char* password = std::getenv("M2M_MYSQL_PASSWORD")) o.password = password;
  m2m::Status st = Load(o, rows, batch, documents);
  if (!st.ok()) {
    std::fprintf(stderr, "raw_upsert_loader: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
