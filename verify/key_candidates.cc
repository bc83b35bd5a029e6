#include "key_candidates.h"

#include <cerrno>
#include <cstdlib>
#include <string>

namespace m2m::verify {
namespace {

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct Builder {
  std::vector<BsonDocument> out;
  bson_t* Next() {
    out.emplace_back();
    return out.back().mutable_get();
  }
};

void AddInteger(const std::string& text, Builder& b) {
  if (text.empty()) return;
  errno = 0;
  char* end = nullptr;
  long long i = std::strtoll(text.c_str(), &end, 10);
  // MongoDB matches numbers by value, whatever their type: one int64 finds 1, 1.0 and 1L.
  if (errno == 0 && end == text.c_str() + text.size()) BSON_APPEND_INT64(b.Next(), "v", i);
}

}  // namespace

std::vector<BsonDocument> KeyCandidates(std::string_view view, SqlType column) {
  const std::string text(view);
  Builder b;
  if (text.size() == 24 && IsHex(text)) {
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, text.c_str());
    BSON_APPEND_OID(b.Next(), "v", &oid);
  }
  if (column == SqlType::kObjectId) return std::move(b.out);
  AddInteger(text, b);
  if (column == SqlType::kBigInt) return std::move(b.out);
  // KeyTextOf's other forms (sql_types.h): a JSON value (a quoted string, or the canonical Extended
  // JSON of the remaining types), else the string itself.
  if (auto wrapped = BsonDocument::FromJson("{\"v\": " + text + "}"); wrapped.ok()) b.out.push_back(*wrapped);
  bson_append_utf8(b.Next(), "v", 1, text.data(), static_cast<int>(text.size()));
  return std::move(b.out);
}

}  // namespace m2m::verify
