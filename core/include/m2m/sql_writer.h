// SQL text for schema changes and for a coalesced Batch of row operations.
//
// The output runs unchanged on MariaDB 10.11 and MySQL 8: backtick-quoted identifiers, escaped
// literals (identifiers.h: the session must use utf8mb4 without NO_BACKSLASH_ESCAPES), JSON columns
// declared as JSON, upserts as INSERT ... ON DUPLICATE KEY UPDATE c=VALUES(c).
//
// Statement order within each Batch segment (docs/mapping.md, "Statement order"):
//   1. DDL, in the order the mapping produced it. DDL commits implicitly in MySQL, so apply runs
//      these before opening the data transaction; each is idempotent against the catalog it came from.
//   2. child rows of every upserted or deleted key, deepest tables first;
//   3. deleted root rows;
//   4. upserted root rows, then their child rows;
//   5. column updates (UPDATE ... WHERE key);
//   6. the segment's collection operation (RENAME TABLE / DROP TABLE), if it propagates.
// Tables are visited in name order, rows in the order their keys first appeared.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "m2m/row_ops.h"
#include "m2m/status.h"

namespace m2m {

struct SqlOptions {
  // Ends ADD COLUMN statements with ", ALGORITHM=INSTANT" so a new column never copies the table.
  // Switch off when the server refuses it (MySQL before 8.0.12, or after 64 instant changes to one
  // table on MySQL 8.0.29+, errors 1845/1846/4092). Default: true
  bool instant_add_column = true;
  // Multi-row INSERTs and DELETE ... IN lists are split to stay under this many bytes; a single
  // row larger than this gets a statement of its own. Keep it below max_allowed_packet.
  // Default: 4 MiB
  size_t max_statement_bytes = size_t{4} << 20;

  Status Validate() const;
};

// The statements of one schema change (one statement each today).
std::vector<std::string> RenderSchemaChange(const SchemaChange& change, const SqlOptions& options);

// The statements of one Batch segment, by kind: the DDL the data needs (run before BEGIN: DDL
// commits implicitly), the row statements (one transaction), and the collection operation
// (RENAME/DROP TABLE: DDL too, run after the data commits). Concatenated in that order they are
// what RenderBatch returns for the segment.
struct SegmentSql {
  std::vector<std::string> schema;
  std::vector<std::string> rows;
  std::vector<std::string> collection;
};
Result<SegmentSql> RenderSegment(const Batch::Segment& segment, const SqlOptions& options);

// All statements of `batch`, in the order above. A kNeedsFullDocument operation still in the batch
// is an error (kInvalidArgument): resolve Batch::NeedsFullDocument() first.
Result<std::vector<std::string>> RenderBatch(const Batch& batch, const SqlOptions& options);

// Statements that leave the kept tables of a drop or rename as they were: only for logging.
std::string DescribeCollectionOp(const CollectionOp& op);

}  // namespace m2m
