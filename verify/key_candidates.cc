#include "key_candidates.h"

#include <cerrno>
#include <cstdio>
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

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; the inverse of sql_types.cc's).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Builder {
  std::vector<BsonDocument> out;
  bson_t* Next() {
    out.emplace_back();
    return out.back().mutable_get();
  }
};

void AddNumbers(const std::string& text, Builder& b) {
  if (text.empty()) return;
  errno = 0;
  char* end = nullptr;
  long long i = std::strtoll(text.c_str(), &end, 10);
  if (errno == 0 && end == text.c_str() + text.size()) {
    BSON_APPEND_INT64(b.Next(), "v", i);
    return;  // MongoDB matches numbers by value, whatever their type
  }
  double d = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return;
  BSON_APPEND_DOUBLE(b.Next(), "v", d);
  bson_decimal128_t dec;
  if (bson_decimal128_from_string(text.c_str(), &dec)) BSON_APPEND_DECIMAL128(b.Next(), "v", &dec);
}

void AddDate(const std::string& text, Builder& b) {
  int y, mo, d, h, mi, s, ms;
  char tail;
  if (text.size() != 23 ||
      std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &tail) != 7) {
    return;
  }
  int64_t millis = ((DaysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + s * 1000 + ms;
  BSON_APPEND_DATE_TIME(b.Next(), "v", millis);
}

void AddUuid(const std::string& text, Builder& b) {
  if (text.size() != 36) return;
  std::string hex;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return;
    } else {
      hex += text[i];
    }
  }
  if (!IsHex(hex)) return;
  uint8_t bytes[16];
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  BSON_APPEND_BINARY(b.Next(), "v", BSON_SUBTYPE_UUID, bytes, 16);
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
  AddNumbers(text, b);
  if (column == SqlType::kBigInt) return std::move(b.out);
  bson_append_utf8(b.Next(), "v", 1, text.data(), static_cast<int>(text.size()));
  if (text == "1" || text == "0") BSON_APPEND_BOOL(b.Next(), "v", text == "1");
  AddDate(text, b);
  AddUuid(text, b);
  if (!text.empty() && (text[0] == '{' || text[0] == '[')) {
    // Documents, arrays and the canonical Extended JSON of the remaining types.
    if (auto wrapped = BsonDocument::FromJson("{\"v\": " + text + "}"); wrapped.ok()) b.out.push_back(*wrapped);
  }
  return std::move(b.out);
}

}  // namespace m2m::verify
