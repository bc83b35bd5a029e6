// The canonical Extended JSON writer and the JSON string escaper (extended_json.h).
//
// Capture writes every document of every event through here, and libbson's own writer
// (bson_as_canonical_extended_json) cost most of capture's CPU: it builds each value in a string of
// its own, appends one character at a time and re-measures with strlen. This writer walks the BSON
// with the same libbson iterator, so it meets the same corruption where libbson does, and appends
// to one buffer. Its output is libbson's byte for byte (libbson 1.23, src/libbson/src/bson/bson.c,
// _bson_as_json_visit_*): the message key's bytes decide Kafka partitioning, and every spacing and
// number format below is that file's.
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "extended_json.h"

namespace m2m::ejson {
namespace {

// libbson writes "{ ... }" for a document or array nested deeper than this (BSON_MAX_RECURSION).
constexpr int kLibbsonMaxDepth = 200;

// ---------------------------------------------------------------------------------------------
// Spelling. The writer is instantiated twice: for the text itself, and for the text as the
// content of a JSON string (every " and \ of it preceded by a \), which lets the event envelope
// embed a document without a second pass over it.

// A string literal as a template argument, so that both spellings of it exist at compile time.
template <size_t N>
struct Literal {
  char text[N];
  consteval Literal(const char (&s)[N]) {  // NOLINT(google-explicit-constructor): used as "..."
    for (size_t i = 0; i < N; ++i) text[i] = s[i];
  }
};

template <Literal kText, bool kQuoted>
struct Spelled {
  static constexpr auto kChars = [] {
    std::array<char, 2 * sizeof(kText.text)> out{};
    size_t n = 0;
    for (size_t i = 0; i + 1 < sizeof(kText.text); ++i) {
      if (kQuoted && (kText.text[i] == '"' || kText.text[i] == '\\')) out[n++] = '\\';
      out[n++] = kText.text[i];
    }
    return std::pair(out, n);
  }();
  static constexpr std::string_view kView{kChars.first.data(), kChars.second};
};

// Bytes a JSON string holds as they are: printable ASCII but the quote and the backslash. Control
// characters and those two are escaped; bytes from 0x80 start a multi-byte sequence, checked first.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// The length of the well-formed UTF-8 sequence (Unicode 15, table 3-7) at s[0] >= 0x80, or 0 when
// there is none; then *bad is the length of its maximal well-formed prefix (at least 1), the unit
// one U+FFFD replaces. libbson's validator accepts the same sequences (plus C0 80, which its JSON
// escaper then refuses), and nlohmann's decoder, Bjoern Hoehrmann's DFA, is this table too.
size_t Utf8Sequence(const unsigned char* s, size_t available, size_t* bad) {
  const unsigned char lead = s[0];
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // shorter forms
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // shorter forms
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    *bad = 1;
    return 0;
  }
  size_t i = 1;
  for (; i < length && i < available; ++i) {
    if (s[i] < low || s[i] > high) break;
    low = 0x80;
    high = 0xBF;
  }
  if (i == length) return length;
  *bad = i;
  return 0;
}

// What to do with bytes that are not UTF-8.
enum class BadUtf8 {
  kFail,     // libbson: the whole document has no JSON form
  kReplace,  // nlohmann::json's error_handler_t::replace: U+FFFD per maximal ill-formed part
};

// The escape of c (a control character, " or \): \" \\ \b \f \n \r \t, else \u00xx. libbson and
// nlohmann spell these alike.
template <bool kQuoted>
void AppendEscape(std::string& out, unsigned char c) {
  constexpr std::string_view kBackslash = kQuoted ? "\\\\" : "\\";
  out.append(kBackslash);
  switch (c) {
    case '"': out.append(kQuoted ? "\\\"" : "\""); return;
    case '\\': out.append(kBackslash); return;
    case '\b': out.push_back('b'); return;
    case '\f': out.push_back('f'); return;
    case '\n': out.push_back('n'); return;
    case '\r': out.push_back('r'); return;
    case '\t': out.push_back('t'); return;
    default: {
      constexpr char kHex[] = "0123456789abcdef";
      const char u[] = {'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(u, sizeof u);
    }
  }
}

// False when the text was not UTF-8 throughout (with kFail, having stopped there).
template <bool kQuoted, BadUtf8 kBad>
bool AppendEscaped(std::string& out, const char* data, size_t size) {
  const auto* s = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  bool utf8 = true;
  while (i < size) {
    const size_t start = i;
    while (i < size && kPlain[s[i]]) ++i;
    out.append(data + start, i - start);
    if (i == size) break;
    if (s[i] < 0x80) {
      AppendEscape<kQuoted>(out, s[i++]);
      continue;
    }
    size_t bad = 0;
    if (const size_t n = Utf8Sequence(s + i, size - i, &bad); n != 0) {
      out.append(data + i, n);
      i += n;
      continue;
    }
    if constexpr (kBad == BadUtf8::kFail) {
      return false;
    } else {
      out.append("\xEF\xBF\xBD");
      i += bad;
      utf8 = false;
    }
  }
  return utf8;
}

// Whether a field name passes libbson's check (bson_iter_visit_all validates every key, array
// indexes included, before writing it).
bool KeyIsUtf8(const char* key, size_t size) {
  const auto* s = reinterpret_cast<const unsigned char*>(key);
  for (size_t i = 0; i < size;) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t bad = 0;
    const size_t n = Utf8Sequence(s + i, size - i, &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Whether some field name of `doc` starts with $ (the escape's condition).
bool HasDollarName(const bson_t* doc) {
  bson_iter_t it;
  if (!bson_iter_init(&it, doc)) return false;
  while (bson_iter_next(&it)) {
    if (bson_iter_key(&it)[0] == '$') return true;
  }
  return false;
}

template <bool kQuoted>
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  // _bson_as_json_visit_all: a document at the top (the event's, or a code-with-scope's scope).
  // `escape`: whether embedded documents with $ names are wrapped (not inside a scope, which the
  // escape never entered).
  bool Top(const bson_t* doc, bool escape) {
    if (bson_empty(doc)) {
      Put<"{ }">();
      return true;
    }
    bson_iter_t it;
    if (!bson_iter_init(&it, doc)) return false;
    Put<"{ ">();
    if (!Members(&it, 0, /*names=*/true, escape)) return false;
    Put<" }">();
    return true;
  }

  // One value, as a member of a document at `depth` (the top document's members are at 0).
  bool Value(const bson_iter_t* it, int depth, bool escape) {
    switch (bson_iter_type(it)) {
      case BSON_TYPE_DOUBLE: Double(bson_iter_double(it)); return true;
      case BSON_TYPE_UTF8: {
        uint32_t size = 0;
        const char* s = bson_iter_utf8(it, &size);
        Put<"\"">();
        if (!Text(s, size)) return false;
        Put<"\"">();
        return true;
      }
      case BSON_TYPE_DOCUMENT: {
        uint32_t size = 0;
        const uint8_t* data = nullptr;
        bson_iter_document(it, &size, &data);
        bson_t doc;
        if (!bson_init_static(&doc, data, size)) return true;  // libbson writes nothing then
        if (!escape || !HasDollarName(&doc)) return Nested(&doc, depth, /*array=*/false, escape);
        // The escape: {"$m2mDocument": <doc>}, a level deeper, as libbson wrote the escaped copy.
        if (depth >= kLibbsonMaxDepth) {
          Put<"{ ... }">();
          return true;
        }
        Put<"{ \"$m2mDocument\" : ">();
        if (!Nested(&doc, depth + 1, /*array=*/false, escape)) return false;
        Put<" }">();
        return true;
      }
      case BSON_TYPE_ARRAY: {
        uint32_t size = 0;
        const uint8_t* data = nullptr;
        bson_iter_array(it, &size, &data);
        bson_t array;
        if (!bson_init_static(&array, data, size)) return true;
        return Nested(&array, depth, /*array=*/true, escape);
      }
      case BSON_TYPE_BINARY: {
        bson_subtype_t subtype = BSON_SUBTYPE_BINARY;
        uint32_t size = 0;
        const uint8_t* data = nullptr;
        bson_iter_binary(it, &subtype, &size, &data);
        Put<"{ \"$binary\" : { \"base64\" : \"">();
        Base64(data, size);
        Put<"\", \"subType\" : \"">();
        Hex(static_cast<uint8_t>(subtype));
        Put<"\" } }">();
        return true;
      }
      case BSON_TYPE_UNDEFINED: Put<"{ \"$undefined\" : true }">(); return true;
      case BSON_TYPE_OID: {
        Put<"{ \"$oid\" : \"">();
        Oid(bson_iter_oid(it));
        Put<"\" }">();
        return true;
      }
      case BSON_TYPE_BOOL:
        if (bson_iter_bool(it)) {
          Put<"true">();
        } else {
          Put<"false">();
        }
        return true;
      case BSON_TYPE_DATE_TIME:
        Put<"{ \"$date\" : { \"$numberLong\" : \"">();
        Integer(bson_iter_date_time(it));
        Put<"\" } }">();
        return true;
      case BSON_TYPE_NULL: Put<"null">(); return true;
      case BSON_TYPE_REGEX: {
        const char* options = nullptr;
        const char* pattern = bson_iter_regex(it, &options);
        Put<"{ \"$regularExpression\" : { \"pattern\" : \"">();
        if (!Text(pattern, std::strlen(pattern))) return false;
        Put<"\", \"options\" : \"">();
        for (const char* o = "ilmsux"; *o != '\0'; ++o) {  // sorted, each once, others dropped
          if (std::strchr(options, *o) != nullptr) out_.push_back(*o);
        }
        Put<"\" } }">();
        return true;
      }
      case BSON_TYPE_DBPOINTER: {
        uint32_t size = 0;
        const char* collection = nullptr;
        const bson_oid_t* oid = nullptr;
        bson_iter_dbpointer(it, &size, &collection, &oid);
        // libbson checks the whole name but writes it only up to a NUL in it.
        if (!bson_utf8_validate(collection, size, true)) return false;
        Put<"{ \"$dbPointer\" : { \"$ref\" : \"">();
        if (!Text(collection, std::strlen(collection))) return false;
        Put<"\", \"$id\" : { \"$oid\" : \"">();
        Oid(oid);
        Put<"\" } } }">();
        return true;
      }
      case BSON_TYPE_CODE: {
        uint32_t size = 0;
        const char* code = bson_iter_code(it, &size);
        Put<"{ \"$code\" : \"">();
        if (!Text(code, size)) return false;
        Put<"\" }">();
        return true;
      }
      case BSON_TYPE_SYMBOL: {
        uint32_t size = 0;
        const char* symbol = bson_iter_symbol(it, &size);
        Put<"{ \"$symbol\" : \"">();
        if (!Text(symbol, size)) return false;
        Put<"\" }">();
        return true;
      }
      case BSON_TYPE_CODEWSCOPE: {
        uint32_t size = 0, scope_size = 0;
        const uint8_t* scope_data = nullptr;
        const char* code = bson_iter_codewscope(it, &size, &scope_size, &scope_data);
        bson_t scope;
        // libbson checks the code, then writes nothing when the scope is no document.
        if (!bson_init_static(&scope, scope_data, scope_size)) return bson_utf8_validate(code, size, true);
        Put<"{ \"$code\" : \"">();
        if (!Text(code, size)) return false;
        Put<"\", \"$scope\" : ">();
        if (!Top(&scope, /*escape=*/false)) return false;
        Put<" }">();
        return true;
      }
      case BSON_TYPE_INT32:
        Put<"{ \"$numberInt\" : \"">();
        Integer(bson_iter_int32(it));
        Put<"\" }">();
        return true;
      case BSON_TYPE_TIMESTAMP: {
        uint32_t t = 0, i = 0;
        bson_iter_timestamp(it, &t, &i);
        Put<"{ \"$timestamp\" : { \"t\" : ">();
        Integer(t);
        Put<", \"i\" : ">();
        Integer(i);
        Put<" } }">();
        return true;
      }
      case BSON_TYPE_INT64:
        Put<"{ \"$numberLong\" : \"">();
        Integer(bson_iter_int64(it));
        Put<"\" }">();
        return true;
      case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t value;
        bson_iter_decimal128(it, &value);
        char text[BSON_DECIMAL128_STRING];
        bson_decimal128_to_string(&value, text);
        Put<"{ \"$numberDecimal\" : \"">();
        out_.append(text);
        Put<"\" }">();
        return true;
      }
      case BSON_TYPE_MAXKEY: Put<"{ \"$maxKey\" : 1 }">(); return true;
      case BSON_TYPE_MINKEY: Put<"{ \"$minKey\" : 1 }">(); return true;
      default: return true;  // not reached: the iterator stops at a type it does not know
    }
  }

 private:
  template <Literal kText>
  void Put() {
    out_.append(Spelled<kText, kQuoted>::kView);
  }

  bool Text(const char* s, size_t size) { return AppendEscaped<kQuoted, BadUtf8::kFail>(out_, s, size); }

  // The members of a document (names) or array at `depth`. False on the first failure, as any
  // failure makes libbson's whole result NULL.
  bool Members(bson_iter_t* it, int depth, bool names, bool escape) {
    bool first = true;
    while (bson_iter_next(it)) {
      const char* key = bson_iter_key(it);
      const size_t key_size = bson_iter_key_len(it);
      if (!first) Put<", ">();
      first = false;
      if (names) {
        Put<"\"">();
        if (!Text(key, key_size)) return false;
        Put<"\" : ">();
      } else if (!KeyIsUtf8(key, key_size)) {
        return false;
      }
      if (!Value(it, depth, escape)) return false;
    }
    return it->err_off == 0;  // 0 at the end; else corrupt, or a type libbson does not know
  }

  // _bson_as_json_visit_document / _array: `doc` is a member of a document at `depth`.
  bool Nested(const bson_t* doc, int depth, bool array, bool escape) {
    if (depth >= kLibbsonMaxDepth) {
      Put<"{ ... }">();
      return true;
    }
    bson_iter_t it;
    if (!bson_iter_init(&it, doc)) return true;
    if (array) {
      Put<"[ ">();
    } else {
      Put<"{ ">();
    }
    if (!Members(&it, depth + 1, !array, escape)) return false;
    if (array) {
      Put<" ]">();
    } else {
      Put<" }">();
    }
    return true;
  }

  // "%.20g", with ".0" added when that leaves only digits and "-"; NaN and the infinities by name.
  void Double(double v) {
    Put<"{ \"$numberDouble\" : \"">();
    if (std::isnan(v)) {
      out_.append("NaN");
    } else if (std::isinf(v)) {
      out_.append(v > 0 ? "Infinity" : "-Infinity");
    } else {
      char text[64];
      const auto r = std::to_chars(text, text + sizeof text, v, std::chars_format::general, 20);
      const std::string_view digits(text, static_cast<size_t>(r.ptr - text));
      out_.append(digits);
      if (digits.find_first_not_of("0123456789-") == std::string_view::npos) out_.append(".0");
    }
    Put<"\" }">();
  }

  template <typename T>
  void Integer(T v) {
    char text[24];
    const auto r = std::to_chars(text, text + sizeof text, v);
    out_.append(text, static_cast<size_t>(r.ptr - text));
  }

  void Hex(uint8_t byte) {
    constexpr char kHex[] = "0123456789abcdef";
    const char text[] = {kHex[byte >> 4], kHex[byte & 0xF]};
    out_.append(text, 2);
  }

  void Oid(const bson_oid_t* oid) {
    for (uint8_t byte : oid->bytes) Hex(byte);
  }

  // RFC 4648 base64 with padding, as libbson's mcommon_b64_ntop.
  void Base64(const uint8_t* data, size_t size) {
    constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t start = out_.size();
    out_.resize(start + (size + 2) / 3 * 4);
    char* o = out_.data() + start;
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
      const uint32_t n = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
      *o++ = kDigits[n >> 18];
      *o++ = kDigits[(n >> 12) & 0x3F];
      *o++ = kDigits[(n >> 6) & 0x3F];
      *o++ = kDigits[n & 0x3F];
    }
    if (i < size) {
      const uint32_t n = (uint32_t{data[i]} << 16) | (i + 1 < size ? uint32_t{data[i + 1]} << 8 : 0);
      *o++ = kDigits[n >> 18];
      *o++ = kDigits[(n >> 12) & 0x3F];
      *o++ = i + 1 < size ? kDigits[(n >> 6) & 0x3F] : '=';
      *o++ = '=';
    }
  }

  std::string& out_;
};

// Runs `write` on a writer of the spelling asked for; on failure, takes back what it wrote.
template <typename Write>
bool WriteAs(Spelling spelling, std::string& out, Write write) {
  const size_t start = out.size();
  const bool ok = spelling == Spelling::kText ? write(Writer<false>(out)) : write(Writer<true>(out));
  if (!ok) out.resize(start);
  return ok;
}

}  // namespace

bool AppendCanonical(const bson_t* doc, Spelling spelling, std::string& out) {
  return WriteAs(spelling, out, [doc](auto writer) { return writer.Top(doc, /*escape=*/true); });
}

bool AppendCanonicalValue(const bson_iter_t* it, Spelling spelling, std::string& out) {
  return WriteAs(spelling, out, [it](auto writer) { return writer.Value(it, 0, /*escape=*/true); });
}

bool AppendJsonString(std::string_view text, std::string& out) {
  out.push_back('"');
  const bool utf8 = AppendEscaped<false, BadUtf8::kReplace>(out, text.data(), text.size());
  out.push_back('"');
  return utf8;
}

}  // namespace m2m::ejson
