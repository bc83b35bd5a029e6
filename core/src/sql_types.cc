#include "m2m/sql_types.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "m2m/bson_document.h"
#include "m2m/identifiers.h"

namespace m2m {
namespace {

constexpr size_t kVarcharChars = 255;
constexpr size_t kTextBytes = 65535;
constexpr size_t kMediumBytes = 16777215;
constexpr size_t kKeyTextBytes = 1024;
constexpr int kDecimalIntDigits = 35;
constexpr int kDecimalFracDigits = 30;

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

SqlType TextTypeFor(std::string_view text, bool varchar_allowed) {
  if (varchar_allowed && CodePoints(text) <= kVarcharChars) return SqlType::kVarchar;
  if (text.size() <= kTextBytes) return SqlType::kText;
  if (text.size() <= kMediumBytes) return SqlType::kMediumText;
  return SqlType::kLongText;
}

SqlType BlobTypeFor(size_t size) {
  if (size <= kTextBytes) return SqlType::kBlob;
  if (size <= kMediumBytes) return SqlType::kMediumBlob;
  return SqlType::kLongBlob;
}

// Rank inside a family; only compared between types of the same family.
int Rank(SqlType t) { return static_cast<int>(t); }

SqlType Max(SqlType a, SqlType b) { return Rank(a) >= Rank(b) ? a : b; }

std::string DoubleText(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d);
  std::string out(buf, res.ptr);
  // MySQL's spelling of the exponent: 1e20, 1e-5 (not 1e+20, 1e-05).
  if (size_t e = out.find('e'); e != std::string::npos) {
    size_t digits = e + 1 + (out[e + 1] == '-' || out[e + 1] == '+');
    size_t first = out.find_first_not_of('0', digits);
    out = out.substr(0, e + 1) + (out[e + 1] == '-' ? "-" : "") + out.substr(first);
  }
  return out;
}

// DECIMAL(65,30)'s text: exactly 30 fraction digits.
std::string DecimalColumnText(std::string fixed) {
  size_t dot = fixed.find('.');
  if (dot == std::string::npos) {
    dot = fixed.size();
    fixed += '.';
  }
  return fixed + std::string(kDecimalFracDigits - (fixed.size() - dot - 1), '0');
}

// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), valid for any int64 day count
// that MongoDB dates can produce.
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

// 'YYYY-MM-DD HH:MM:SS.fff' (UTC), the text MySQL returns for DATETIME(3); sets *in_range when the
// year is within DATETIME's 1000..9999.
std::string DateText(int64_t ms, bool* in_range) {
  int64_t days = ms / 86400000;
  int64_t rem = ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    --days;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  *in_range = y >= 1000 && y <= 9999;
  char buf[64];
  snprintf(buf, sizeof buf, "%s%04lld-%02u-%02u %02lld:%02lld:%02lld.%03lld", y < 0 ? "-" : "",
           static_cast<long long>(y < 0 ? -y : y), m, d, static_cast<long long>(rem / 3600000),
           static_cast<long long>(rem / 60000 % 60), static_cast<long long>(rem / 1000 % 60),
           static_cast<long long>(rem % 1000));
  return buf;
}

// Relaxed Extended JSON of the scalar types every _id and most fields have, written directly: the
// text ValueJson gets from libbson and nlohmann for them, for a fraction of the cost (each change
// event labels its key with it). Nullopt for the other types, and for text libbson refuses.
std::optional<std::string> ScalarRelaxedJson(const bson_iter_t* iter) {
  switch (bson_iter_type(iter)) {
    case BSON_TYPE_INT32:
      return std::to_string(bson_iter_int32(iter));
    case BSON_TYPE_INT64:
      return std::to_string(bson_iter_int64(iter));
    case BSON_TYPE_BOOL:
      return bson_iter_bool(iter) ? "true" : "false";
    case BSON_TYPE_NULL:
      return "null";
    case BSON_TYPE_OID: {
      char hex[25];
      bson_oid_to_string(bson_iter_oid(iter), hex);
      return std::string(R"({"$oid":")") + hex + "\"}";
    }
    case BSON_TYPE_UTF8: {
      uint32_t len = 0;
      const char* s = bson_iter_utf8(iter, &len);
      // libbson writes no JSON for invalid UTF-8; valid text round-trips through its escape.
      if (!bson_utf8_validate(s, len, /*allow_null=*/true)) return std::nullopt;
      return nlohmann::json(std::string(s, len)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    default:
      return std::nullopt;
  }
}

// Canonical or relaxed Extended JSON of one value, compact, keys in document order.
std::string ValueJson(const bson_iter_t* iter, bool canonical) {
  if (!canonical) {
    if (std::optional<std::string> scalar = ScalarRelaxedJson(iter)) return std::move(*scalar);
  }
  bson_t wrapper = BSON_INITIALIZER;
  bson_append_iter(&wrapper, "v", 1, iter);
  char* json = canonical ? bson_as_canonical_extended_json(&wrapper, nullptr)
                         : bson_as_relaxed_extended_json(&wrapper, nullptr);
  bson_destroy(&wrapper);
  std::string out;
  if (json != nullptr) {
    // libbson's spacing is not a documented format; nlohmann gives a compact, stable one. It cannot
    // throw here: libbson produced the text.
    out = nlohmann::ordered_json::parse(json, nullptr, false)["v"].dump(
        -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    bson_free(json);
  }
  return out;
}

std::string UuidText(const uint8_t* b) {
  char buf[37];
  snprintf(buf, sizeof buf,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return buf;
}

SqlValue Integer(int64_t v, SqlType type) {
  SqlValue out;
  out.type = type;
  out.text = std::to_string(v);
  out.decimal = out.text;
  out.exact_in_double = v >= -(int64_t{1} << 53) && v <= (int64_t{1} << 53);
  return out;
}

}  // namespace

SqlValue TextValue(std::string text) {
  SqlValue out;
  out.type = TextTypeFor(text, true);
  out.text = std::move(text);
  return out;
}

std::string_view SqlTypeName(SqlType type) {
  switch (type) {
    case SqlType::kNull: return "NULL";
    case SqlType::kBool: return "TINYINT(1)";
    case SqlType::kInt: return "INT";
    case SqlType::kBigInt: return "BIGINT";
    case SqlType::kDecimal: return "DECIMAL(65,30)";
    case SqlType::kDouble: return "DOUBLE";
    case SqlType::kDateTime: return "DATETIME(3)";
    case SqlType::kObjectId: return "CHAR(24)";
    case SqlType::kUuid: return "CHAR(36)";
    case SqlType::kKeyText: return "VARBINARY(1024)";
    case SqlType::kVarchar: return "VARCHAR(255)";
    case SqlType::kText: return "TEXT";
    case SqlType::kMediumText: return "MEDIUMTEXT";
    case SqlType::kLongText: return "LONGTEXT";
    case SqlType::kBlob: return "BLOB";
    case SqlType::kMediumBlob: return "MEDIUMBLOB";
    case SqlType::kLongBlob: return "LONGBLOB";
    case SqlType::kJson: return "JSON";
    case SqlType::kOther: return "";
  }
  return "";
}

SqlType ParseColumnType(std::string_view column_type, bool json_comment) {
  std::string t = AsciiLower(column_type);
  // MySQL 5.7/MariaDB print display widths ("bigint(20)"), MySQL 8.0.19+ does not.
  auto base = [&](std::string_view name) {
    return t == name || (t.starts_with(std::string(name) + "(") && t.find(' ') == std::string::npos);
  };
  if (t == "tinyint(1)") return SqlType::kBool;
  if (base("int")) return SqlType::kInt;
  if (base("bigint")) return SqlType::kBigInt;
  if (t == "decimal(65,30)") return SqlType::kDecimal;
  if (t == "double") return SqlType::kDouble;
  if (t == "datetime(3)") return SqlType::kDateTime;
  if (t == "char(24)") return SqlType::kObjectId;
  if (t == "char(36)") return SqlType::kUuid;
  if (t == "varbinary(1024)") return SqlType::kKeyText;
  if (t == "varchar(255)") return SqlType::kVarchar;
  if (t == "text") return SqlType::kText;
  if (t == "mediumtext") return SqlType::kMediumText;
  if (t == "json" || (t == "longtext" && json_comment)) return SqlType::kJson;
  if (t == "longtext") return SqlType::kLongText;
  if (t == "blob") return SqlType::kBlob;
  if (t == "mediumblob") return SqlType::kMediumBlob;
  if (t == "longblob") return SqlType::kLongBlob;
  return SqlType::kOther;
}

bool IsTextType(SqlType t) { return t >= SqlType::kVarchar && t <= SqlType::kLongText; }
bool IsBlobType(SqlType t) { return t >= SqlType::kBlob && t <= SqlType::kLongBlob; }

std::optional<std::string> FixedDecimal(std::string_view s) {
  bool negative = !s.empty() && s[0] == '-';
  if (negative || (!s.empty() && s[0] == '+')) s.remove_prefix(1);
  std::string digits;
  int point = -1;  // digits before the decimal point
  size_t i = 0;
  for (; i < s.size() && s[i] != 'e' && s[i] != 'E'; ++i) {
    if (s[i] == '.') {
      point = static_cast<int>(digits.size());
    } else if (s[i] >= '0' && s[i] <= '9') {
      digits += s[i];
    } else {
      return std::nullopt;  // NaN, Infinity
    }
  }
  if (digits.empty()) return std::nullopt;
  if (point < 0) point = static_cast<int>(digits.size());
  long exponent = 0;
  if (i < s.size()) {
    std::string_view e = s.substr(i + 1);
    if (!e.empty() && e[0] == '+') e.remove_prefix(1);
    auto r = std::from_chars(e.data(), e.data() + e.size(), exponent);
    if (r.ec != std::errc()) return std::nullopt;
  }
  size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) return std::string("0");
  long int_len = point + exponent;  // digits before the point after shifting
  // Drop leading and trailing zeros, keeping int_len relative to the first significant digit.
  int_len -= static_cast<long>(first);
  digits.erase(0, first);
  digits.erase(digits.find_last_not_of('0') + 1);
  long frac_len = std::max<long>(0, static_cast<long>(digits.size()) - int_len);
  if (int_len > kDecimalIntDigits || frac_len > kDecimalFracDigits) return std::nullopt;
  std::string out = negative ? "-" : "";
  if (int_len <= 0) {
    out += "0." + std::string(static_cast<size_t>(-int_len), '0') + digits;
  } else if (static_cast<size_t>(int_len) >= digits.size()) {
    out += digits + std::string(static_cast<size_t>(int_len) - digits.size(), '0');
  } else {
    out += digits.substr(0, static_cast<size_t>(int_len)) + "." + digits.substr(static_cast<size_t>(int_len));
  }
  return out;
}

std::string RelaxedJson(const bson_iter_t* iter) { return ValueJson(iter, false); }

SqlValue ValueFromBson(const bson_iter_t* iter) {
  SqlValue out;
  switch (bson_iter_type(iter)) {
    case BSON_TYPE_NULL:
      return out;
    case BSON_TYPE_BOOL: {
      out = Integer(bson_iter_bool(iter) ? 1 : 0, SqlType::kBool);
      return out;
    }
    case BSON_TYPE_INT32:
      return Integer(bson_iter_int32(iter), SqlType::kInt);
    case BSON_TYPE_INT64:
      return Integer(bson_iter_int64(iter), SqlType::kBigInt);
    case BSON_TYPE_DOUBLE: {
      double d = bson_iter_double(iter);
      out.text = DoubleText(d);
      if (!std::isfinite(d)) return TextValue(out.text);
      out.type = SqlType::kDouble;
      out.decimal = FixedDecimal(out.text);
      return out;
    }
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      bson_iter_decimal128(iter, &dec);
      char buf[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string(&dec, buf);
      out.text = buf;
      out.decimal = FixedDecimal(out.text);
      if (!out.decimal) return TextValue(out.text);
      out.type = SqlType::kDecimal;
      out.text = DecimalColumnText(*out.decimal);
      return out;
    }
    case BSON_TYPE_DATE_TIME: {
      bool in_range = false;
      out.text = DateText(bson_iter_date_time(iter), &in_range);
      if (!in_range) return TextValue(out.text);
      out.type = SqlType::kDateTime;
      return out;
    }
    case BSON_TYPE_UTF8: {
      uint32_t len = 0;
      const char* s = bson_iter_utf8(iter, &len);
      return TextValue(std::string(s, len));
    }
    case BSON_TYPE_OID: {
      char hex[25];
      bson_oid_to_string(bson_iter_oid(iter), hex);
      out.type = SqlType::kObjectId;
      out.text = hex;
      return out;
    }
    case BSON_TYPE_BINARY: {
      bson_subtype_t subtype;
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_binary(iter, &subtype, &len, &data);
      if (subtype == BSON_SUBTYPE_UUID && len == 16) {
        out.type = SqlType::kUuid;
        out.text = UuidText(data);
        return out;
      }
      out.type = BlobTypeFor(len);
      out.bytes.assign(reinterpret_cast<const char*>(data), len);
      out.text = ValueJson(iter, true);
      return out;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
      out.type = SqlType::kJson;
      out.text = ValueJson(iter, false);
      return out;
    default:
      // Regex, JavaScript, timestamp, min/max key, symbol, DBPointer, undefined: canonical EJSON.
      return TextValue(ValueJson(iter, true));
  }
}

namespace {

// A string's key text is the string itself unless it could be another type's key text: the decimal
// text of an integer (what a BIGINT key column turns into when it widens), 24 lowercase hex digits
// (an ObjectId's, from CHAR(24)), or JSON (the canonical Extended JSON of the other types, or a
// quoted string). Those are stored as a JSON string literal.
bool KeyStringNeedsQuotes(std::string_view s) {
  if (s.empty()) return false;
  std::string_view digits = s[0] == '-' ? s.substr(1) : s;
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos) return true;
  if (s.size() == 24 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos) return true;
  return s[0] == '{' || s[0] == '[' || s[0] == '"' || s == "null" || s == "true" || s == "false";
}

// An integral number's decimal text when it fits int64: MongoDB compares numbers by value, so 1,
// NumberLong(1), 1.0 and NumberDecimal("1") are one _id and get one key.
std::optional<std::string> IntegralKeyText(const bson_iter_t* iter) {
  if (BSON_ITER_HOLDS_DOUBLE(iter)) {
    double d = bson_iter_double(iter);
    // 2^63 is the first double past int64.
    if (std::isfinite(d) && d == std::trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
      return std::to_string(static_cast<int64_t>(d));
    }
    return std::nullopt;
  }
  if (BSON_ITER_HOLDS_DECIMAL128(iter)) {
    bson_decimal128_t dec;
    bson_iter_decimal128(iter, &dec);
    char buf[BSON_DECIMAL128_STRING];
    bson_decimal128_to_string(&dec, buf);
    auto fixed = FixedDecimal(buf);
    if (!fixed || fixed->find('.') != std::string::npos) return std::nullopt;
    int64_t v = 0;
    auto r = std::from_chars(fixed->data(), fixed->data() + fixed->size(), v);
    if (r.ec != std::errc() || r.ptr != fixed->data() + fixed->size()) return std::nullopt;
    return std::to_string(v);
  }
  return std::nullopt;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

}  // namespace

std::string KeyTextOf(const bson_iter_t* iter) {
  if (BSON_ITER_HOLDS_INT32(iter)) return std::to_string(bson_iter_int32(iter));
  if (BSON_ITER_HOLDS_INT64(iter)) return std::to_string(bson_iter_int64(iter));
  if (auto n = IntegralKeyText(iter)) return *n;
  if (BSON_ITER_HOLDS_OID(iter)) {
    char hex[25];
    bson_oid_to_string(bson_iter_oid(iter), hex);
    return hex;
  }
  if (BSON_ITER_HOLDS_UTF8(iter)) {
    uint32_t len = 0;
    const char* s = bson_iter_utf8(iter, &len);
    std::string_view text(s, len);
    if (!KeyStringNeedsQuotes(text)) return std::string(text);
    return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  // Canonical Extended JSON, with the escape for sub-documents whose field names start with $, so
  // that no two values share a text.
  bson_t wrapper = BSON_INITIALIZER;
  bson_append_iter(&wrapper, "v", 1, iter);
  std::string json = BsonDocument(&wrapper).ToCanonicalJson();
  bson_destroy(&wrapper);
  return nlohmann::ordered_json::parse(json, nullptr, false)["v"].dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<SqlValue> KeyValueFromBson(const bson_iter_t* iter) {
  SqlValue v;
  v.text = KeyTextOf(iter);
  if (BSON_ITER_HOLDS_INT32(iter) || BSON_ITER_HOLDS_INT64(iter) || IntegralKeyText(iter)) {
    v.type = SqlType::kBigInt;
    v.decimal = v.text;
    return v;
  }
  if (BSON_ITER_HOLDS_OID(iter)) {
    v.type = SqlType::kObjectId;
    return v;
  }
  v.type = SqlType::kKeyText;
  if (v.text.size() > kKeyTextBytes) {
    // The start of the text, whole characters only, then a byte no UTF-8 text holds and the text's
    // SHA-256: never the text of another value, and within the column and InnoDB's index limit.
    // The whole text goes to the key's full-value column (docs/mapping.md, "Key columns").
    size_t cut = kKeyTextBytes - 1 - 64;
    while (cut > 0 && (static_cast<unsigned char>(v.text[cut]) & 0xC0) == 0x80) --cut;
    v.text = v.text.substr(0, cut) + kHashedKeyMark + Sha256Hex(v.text);
  }
  return v;
}

SqlType Widen(SqlType current, const SqlValue& v, bool varchar_allowed) {
  const SqlType nat = v.type;
  auto text = [&](SqlType floor) {
    SqlType t = TextTypeFor(v.text, varchar_allowed || floor == SqlType::kVarchar);
    return IsTextType(floor) ? Max(floor, t) : t;
  };
  if (nat == SqlType::kNull || nat == current) return current;
  if (current == SqlType::kNull) return IsTextType(nat) ? text(SqlType::kNull) : nat;
  if (current == SqlType::kOther) return current;
  if (IsTextType(current)) return text(current);
  if (IsBlobType(current)) {
    return Max(current, BlobTypeFor(IsBlobType(nat) ? v.bytes.size() : v.text.size()));
  }
  if (current == SqlType::kJson) return SqlType::kLongText;
  auto integral = [](SqlType t) { return t >= SqlType::kBool && t <= SqlType::kDecimal; };
  if (integral(current) && integral(nat)) return Max(current, nat);
  if (current == SqlType::kDouble && (nat == SqlType::kBool || nat == SqlType::kInt)) return current;
  if (current == SqlType::kDouble && nat == SqlType::kBigInt && v.exact_in_double) return current;
  if ((current == SqlType::kBool || current == SqlType::kInt) && nat == SqlType::kDouble) return nat;
  if ((current == SqlType::kBigInt || current == SqlType::kDecimal) && nat == SqlType::kDouble &&
      v.decimal) {
    return SqlType::kDecimal;
  }
  // Different families: text holds both the old values (as MySQL converts them) and the new one.
  return text(SqlType::kNull);
}

SqlType WidenKey(SqlType current, const SqlValue& v) {
  if (current == SqlType::kNull || current == v.type || current == SqlType::kOther) {
    return current == SqlType::kNull ? v.type : current;
  }
  return SqlType::kKeyText;
}

std::string StoredText(const SqlValue& v, SqlType column) {
  if (column == SqlType::kDecimal && v.decimal) return DecimalColumnText(*v.decimal);
  if (IsBlobType(column) && IsBlobType(v.type)) return v.bytes;
  return v.text;
}

SqlValue ConvertedToText(const SqlValue& v, SqlType from) {
  if (v.is_null()) return v;
  return TextValue(StoredText(v, from));
}

namespace {

// Only text that is a number goes into SQL unquoted: a value's text is never trusted to be one
// because of the column's type, or an _id such as "1 OR 1=1" in a BIGINT key column would be SQL.
// The whole text must match -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)? (scanned by hand: a std::regex
// match cost more than the rest of a value's rendering).
bool IsNumericLiteral(const std::string& text) {
  size_t i = 0;
  const size_t n = text.size();
  auto digits = [&] {
    const size_t from = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    return i > from;
  };
  if (i < n && text[i] == '-') ++i;
  if (!digits()) return false;
  if (i < n && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

}  // namespace

std::string SqlLiteral(const SqlValue& v, SqlType column) {
  if (v.is_null()) return "NULL";
  switch (column) {
    case SqlType::kBool:
    case SqlType::kInt:
    case SqlType::kBigInt:
    case SqlType::kDouble:
      return IsNumericLiteral(v.text) ? v.text : QuoteString(v.text);
    case SqlType::kDecimal:
      return v.decimal ? *v.decimal : QuoteString(v.text);
    default:
      if (IsBlobType(column) && IsBlobType(v.type)) return HexLiteral(v.bytes);
      // A hashed key is not UTF-8, which a string literal on a utf8mb4 connection must be.
      if (v.text.find(kHashedKeyMark) != std::string::npos) return HexLiteral(v.text);
      return QuoteString(v.text);
  }
}

}  // namespace m2m
