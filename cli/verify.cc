// mongo2mysql verify: does MySQL hold what the mapping makes of MongoDB's documents?
#include <cstdio>
#include <cstdlib>
#include <map>

#include "commands.h"
#include "config_file.h"
#include "daemon.h"
#include "mysql_flags.h"
#include "verify.h"

namespace m2m::cli {
namespace {

struct VerifyFlags {
  std::string collections;
  std::string mapping_file;
  double recheck_seconds = 0;
  LogFlags log;
};

void PrintReport(const verify::VerifyReport& report) {
  int64_t checked = 0;
  for (const verify::CollectionSummary& c : report.collections) {
    checked += c.checked;
    std::printf("%s: %lld documents in MongoDB, %lld rows in MySQL table %s; %lld checked in %.1f s (%.0f/s)\n",
                c.collection.c_str(), static_cast<long long>(c.mongo_documents),
                static_cast<long long>(c.mysql_rows), c.table.c_str(), static_cast<long long>(c.checked),
                c.seconds, c.seconds > 0 ? c.checked / c.seconds : 0.0);
  }
  std::map<std::string_view, int> by_kind;
  for (const verify::Difference& d : report.differences) {
    std::printf("%s\n", verify::DescribeDifference(d).c_str());
    ++by_kind[verify::DifferenceKindName(d.kind)];
  }
  std::string kinds;
  for (const auto& [kind, n] : by_kind) kinds += (kinds.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(kind);
  std::string resolved;
  if (report.resolved > 0) resolved = "; " + std::to_string(report.resolved) + " resolved while rechecking";
  std::printf("verify: %zu collections, %lld documents checked: %s%s\n", report.collections.size(),
              static_cast<long long>(checked),
              report.clean() ? "clean" : (std::to_string(report.differences.size()) + " differences (" + kinds + ")").c_str(),
              resolved.c_str());
  std::fflush(stdout);
}

Status RunVerify(verify::VerifyOptions o, const VerifyFlags& f) {
  // Progress goes to stderr, so stdout is the report alone.
  M2M_RETURN_NOT_OK(StartLogging(f.log, {{"command", "verify"}}, /*to_stderr=*/true));
  if (o.mysql.database.empty()) o.mysql.database = o.mongo_database;
  ReadMysqlPassword(o.mysql);
  if (!f.mapping_file.empty()) {
    M2M_ASSIGN_OR_RETURN(o.mapping, LoadMappingFile(f.mapping_file));
  }
  for (size_t start = 0; start < f.collections.size();) {
    size_t comma = std::min(f.collections.find(',', start), f.collections.size());
    if (comma > start) o.collections.push_back(f.collections.substr(start, comma - start));
    start = comma + 1;
  }
  o.recheck_after = std::chrono::milliseconds(static_cast<int64_t>(f.recheck_seconds * 1000));
  M2M_ASSIGN_OR_RETURN(verify::VerifyReport report, verify::Verify(o));
  PrintReport(report);
  if (report.clean()) return Status::OK();
  return Status(StatusCode::kDiverged, std::to_string(report.differences.size()) + " differences (listed above)");
}

}  // namespace

void AddVerifyCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<verify::VerifyOptions>();
  auto f = std::make_shared<VerifyFlags>();
  CLI::App* cmd = app.add_subcommand("verify", "Compare MongoDB with MySQL, document by document.");
  cmd->footer(
      "Maps every document of the MongoDB database --db with the mapping apply uses (give verify the same\n"
      "--mapping file) and compares the rows it makes, in the root table and every child table, with the\n"
      "rows MySQL holds for its key. Collections are walked in _id ranges of --range-size documents (one\n"
      "MongoDB read and one MySQL query per table for each), so only one range is in memory at a time;\n"
      "--sample checks a fraction of the ranges. A second pass walks the root tables' keys to find rows\n"
      "whose document is gone. Each difference is printed by document key:\n"
      "  missing    the document has no row in MySQL\n"
      "  extra      a row in MySQL has no document\n"
      "  different  the columns and child rows that differ, MongoDB's value against MySQL's\n"
      "  unmappable the mapping refuses the document (apply quarantines such documents)\n"
      "  count      (sampled runs) the numbers of documents and rows differ\n"
      "Run it while the pipeline runs: keys found different are checked again, at growing intervals, for\n"
      "up to --recheck-after seconds, and only those still different then are reported; make it longer\n"
      "than the pipeline's lag.\n"
      "Exit status: 0 when MySQL matches, 1 when anything differs, 2 bad usage, 3 a server is unreachable.\n"
      "The MySQL password comes from the environment variable M2M_MYSQL_PASSWORD. Details: docs/verify.md.\n\n"
      "Examples:\n"
      "  mongo2mysql verify --db shop\n"
      "  mongo2mysql verify --mongo-uri 'mongodb://db1/?replicaSet=rs0' --db shop --mysql-host mysql.internal \\\n"
      "      --mysql-database shop --mapping shop.yaml --collections orders,customers --sample 0.05");
  AddConfigOption(cmd, kVerify);
  AddLogOptions(cmd, kVerify, f->log);
  AddSetting(cmd, kVerify, "mongo-uri", o->mongo.uri);
  AddSetting(cmd, kVerify, "db", o->mongo_database);
  AddSetting(cmd, kVerify, "collections", f->collections);
  AddMysqlOptions(cmd, kVerify, o->mysql);
  AddSetting(cmd, kVerify, "mapping", f->mapping_file)->check(CLI::ExistingFile);
  AddSetting(cmd, kVerify, "range-size", o->range_size)->check(CLI::PositiveNumber);
  AddSetting(cmd, kVerify, "sample", o->sample)->check(CLI::Range(1e-9, 1.0));
  AddSetting(cmd, kVerify, "seed", o->seed);
  f->recheck_seconds = std::chrono::duration<double>(o->recheck_after).count();
  AddSetting(cmd, kVerify, "recheck-after", f->recheck_seconds)->check(CLI::NonNegativeNumber);
  cmd->callback([o, f, &action] { action = [o, f] { return RunVerify(*o, *f); }; });
}

}  // namespace m2m::cli
