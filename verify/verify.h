// Verify: does MySQL hold what the mapping makes of MongoDB's documents? (docs/verify.md)
//
// Per collection: the documents are counted and their _id index is walked into ranges of
// `range_size` documents, the way capture's snapshot cuts a collection (snapshot.h: per _id type
// class, so every document is in exactly one range). For each range checked (all, or a sample), the
// documents are read from MongoDB and mapped with the same Mapper and mapping file apply uses, and
// the rows of their keys are read from the root table and every child table with one query per table.
// Each document is then missing (no root row), different (naming each column and child row that
// differs), or equal. A second pass walks the root table's keys in the same range size and asks
// MongoDB for their documents: rows without one are extra.
//
// While the pipeline runs, a document changed a moment ago differs until apply has caught up. So the
// keys found different are not reported at once: verify checks just those keys again, at growing
// intervals (0.5 s, 1 s, 2 s, ...), until they match or `recheck_after` (longer than the pipeline's
// lag) has passed; only those still different then are reported.
//
// Thread safety: Verify() runs on the calling thread and opens its own connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "m2m/mapping.h"
#include "m2m/mongo_client.h"
#include "m2m/mysql_client.h"
#include "m2m/status.h"

namespace m2m::verify {

struct VerifyOptions {
  // The MongoDB deployment. Default: MongoOptions defaults (mongodb://127.0.0.1:27017)
  MongoOptions mongo;
  // The MongoDB database whose collections are compared. Required.
  std::string mongo_database;
  // The MySQL server and the database apply writes to (mysql.database is required).
  MysqlOptions mysql;
  // The mapping apply runs with (the same YAML file). Default: automatic for every collection
  MappingConfig mapping;
  // Collections to compare. Default: every collection of the MongoDB database and every collection
  // with a root table in the MySQL database
  std::vector<std::string> collections;
  // Documents per _id range: each checked range is one MongoDB read and one MySQL query per table.
  // Default: 1000
  int range_size = 1000;
  // Fraction of the ranges checked, in (0, 1]; which ranges is fixed by `seed`, so a rerun checks the
  // same ones. With a sample, a difference in the counts is reported too. Default: 1 (every range)
  double sample = 1.0;
  // Chooses the sampled ranges. Default: 0
  uint64_t seed = 0;
  // How long differing keys are checked again before they are reported, so changes still on their
  // way through the pipeline are not; 0 reports the first findings. Default: 10 s
  std::chrono::milliseconds recheck_after{10000};
  // How often progress is logged while a collection is walked. Default: 5 s
  std::chrono::milliseconds progress_interval{5000};

  Status Validate() const;
};

enum class DifferenceKind {
  kMissing,     // the document has no row in MySQL
  kExtra,       // a row in MySQL has no document
  kDifferent,   // the row or its child rows differ; see `details`
  kUnmappable,  // the mapping refuses the document (apply quarantines it); see `details`
  kCount,       // sampled runs: the counts differ
};

std::string_view DifferenceKindName(DifferenceKind kind);  // "missing", "extra", ...

struct Difference {
  DifferenceKind kind = DifferenceKind::kDifferent;
  std::string collection;
  // The document key as Extended JSON, as in mapping error messages: _id={"$oid":"..."}.
  std::string key;
  // kDifferent: one line per differing column or child row; kUnmappable: the reason; kCount: the
  // two counts.
  std::vector<std::string> details;
};

// "different orders _id=7: total: MongoDB 12.5, MySQL 13; ..."
std::string DescribeDifference(const Difference& d);

struct CollectionSummary {
  std::string collection;
  std::string table;            // the root table (may not exist yet)
  int64_t mongo_documents = 0;  // when the walk was planned
  int64_t mysql_rows = 0;       // root rows, when the walk was planned
  int64_t checked = 0;          // documents compared row by row
  double seconds = 0;
};

struct VerifyReport {
  std::vector<CollectionSummary> collections;
  // What is still different after the recheck, by collection and key.
  std::vector<Difference> differences;
  // Differences of the first pass that the recheck found resolved (changes in flight).
  int64_t resolved = 0;
  bool clean() const { return differences.empty(); }
};

// Compares; an error is returned only when the comparison itself could not be done (a server cannot
// be reached, an unknown collection). Differences are the report's content, not an error.
Result<VerifyReport> Verify(const VerifyOptions& options);

}  // namespace m2m::verify
