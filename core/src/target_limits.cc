#include "m2m/target_limits.h"

#include <algorithm>

#include "m2m/table_schema.h"

namespace m2m {
namespace {

// The server's own limits (measured, see the header), which the budgets stay under.
constexpr int kServerColumns = 1017;
constexpr int kServerDefinitionBytes = 64000;
constexpr int kServerInlineBytes = 7900;
constexpr int kServerDeclaredBytes = 65535;

// Per column, besides its name and comment, in the table definition (fitted to MariaDB's 1117).
constexpr int kDefinitionOverhead = 18;
// What InnoDB keeps inline for a column that may be stored off-page (its 20-byte pointer and length).
constexpr int kOffPageInline = 21;

}  // namespace

TargetLimits TargetLimits::ForServer(std::string_view version) {
  TargetLimits limits;
  if (version.find("MariaDB") == std::string_view::npos) limits.max_json_depth = 100;
  return limits;
}

Status TargetLimits::Validate() const {
  if (max_columns < 8 || max_columns > kServerColumns) return Status::Invalid("limits: max_columns must be 8..1017");
  if (max_definition_bytes < 4096 || max_definition_bytes > kServerDefinitionBytes) {
    return Status::Invalid("limits: max_definition_bytes must be 4096..64000");
  }
  if (max_inline_row_bytes < 512 || max_inline_row_bytes > kServerInlineBytes) {
    return Status::Invalid("limits: max_inline_row_bytes must be 512..7900");
  }
  if (max_declared_row_bytes < 4096 || max_declared_row_bytes > kServerDeclaredBytes) {
    return Status::Invalid("limits: max_declared_row_bytes must be 4096..65535");
  }
  if (max_key_parts < 2 || max_key_parts > 16) return Status::Invalid("limits: max_key_parts must be 2..16");
  if (max_json_depth < 1 || max_json_depth > 100) return Status::Invalid("limits: max_json_depth must be 1..100");
  return Status::OK();
}

ColumnCost CostOf(SqlType type, size_t name_bytes, size_t comment_bytes) {
  ColumnCost cost;
  cost.definition = static_cast<int>(name_bytes + comment_bytes) + kDefinitionOverhead;
  auto fixed = [&](int bytes) {
    cost.inline_bytes = bytes;
    cost.declared_bytes = bytes;
  };
  switch (type) {
    case SqlType::kBool: fixed(1); break;
    case SqlType::kInt: fixed(4); break;
    case SqlType::kBigInt:
    case SqlType::kDouble: fixed(8); break;
    case SqlType::kDecimal: fixed(30); break;
    case SqlType::kDateTime: fixed(7); break;
    case SqlType::kObjectId: fixed(96); break;  // CHAR(24) in utf8mb4: 4 bytes a character, inline
    case SqlType::kUuid: fixed(144); break;
    case SqlType::kVarchar:
    case SqlType::kOther:  // a column someone else made: its size is unknown here; like a VARCHAR(255)
      cost.inline_bytes = kOffPageInline;
      cost.declared_bytes = 255 * 4 + 2;
      break;
    case SqlType::kKeyText:
      cost.inline_bytes = kOffPageInline;
      cost.declared_bytes = 1024 + 2;
      break;
    default:  // TEXT, BLOB, JSON families: off-page, a pointer counted in the declared size
      cost.inline_bytes = kOffPageInline;
      cost.declared_bytes = 12;
      break;
  }
  return cost;
}

ColumnCost CostOf(const ColumnSchema& c) { return CostOf(c.type, c.name.size(), c.Comment().size()); }

void TableUsage::Add(const ColumnCost& c, int n) {
  columns += n;
  cost.definition += c.definition;
  cost.inline_bytes += c.inline_bytes;
  cost.declared_bytes += c.declared_bytes;
}

TableUsage UsageOf(const std::vector<ColumnSchema>& columns) {
  TableUsage usage;
  for (const ColumnSchema& c : columns) usage.Add(CostOf(c));
  return usage;
}

bool WithinLimits(const TableUsage& u, const TargetLimits& l, bool widening) {
  const int null_bitmap = (u.columns + 7) / 8;
  const int inline_bytes = u.cost.inline_bytes + null_bitmap;
  const int declared_bytes = u.cost.declared_bytes + null_bitmap;
  if (widening) {
    return u.columns <= kServerColumns && u.cost.definition <= kServerDefinitionBytes &&
           inline_bytes <= kServerInlineBytes && declared_bytes <= kServerDeclaredBytes;
  }
  return u.columns <= l.max_columns && u.cost.definition <= l.max_definition_bytes &&
         inline_bytes <= l.max_inline_row_bytes && declared_bytes <= l.max_declared_row_bytes;
}

int JsonDepth(std::string_view json) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace m2m
