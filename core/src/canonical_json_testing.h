// Test-only (the writer's differential tests and fuzz/canonical_json_fuzzer.cc): the canonical
// Extended JSON as the codec wrote it before extended_json_writer.cc -- the escape applied to a copy
// of the document, then libbson's bson_as_canonical_extended_json -- and a generator of hostile
// documents. The writer must match the reference byte for byte (extended_json.h).
#pragma once

#include <bson/bson.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "extended_json.h"

namespace m2m::testing {

// ---------------------------------------------------------------------------------------------
// The reference

// Whether an embedded document below `it`'s container has a field name starting with $.
inline bool AnyDollarBelow(bson_iter_t* it) {
  while (bson_iter_next(it)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it)) continue;
    bson_iter_t child;
    if (!bson_iter_recurse(it, &child)) continue;
    if (BSON_ITER_HOLDS_DOCUMENT(it)) {
      bson_iter_t keys = child;
      while (bson_iter_next(&keys)) {
        if (bson_iter_key(&keys)[0] == '$') return true;
      }
    }
    if (AnyDollarBelow(&child)) return true;
  }
  return false;
}

inline bool NeedsEscape(const bson_t* doc) {
  bson_iter_t it;
  return bson_iter_init(&it, doc) && AnyDollarBelow(&it);
}

// A copy with each embedded document that has a $ name replaced by {"$m2mDocument": <it>} (with
// `escape`; else a plain copy).
inline void EscapeInto(bson_iter_t* it, bson_t* out, bool escape = true) {
  while (bson_iter_next(it)) {
    const char* key = bson_iter_key(it);
    const int key_len = static_cast<int>(bson_iter_key_len(it));
    bson_iter_t child;
    if ((!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it)) || !bson_iter_recurse(it, &child)) {
      bson_append_iter(out, key, key_len, it);
      continue;
    }
    bson_t sub;
    if (BSON_ITER_HOLDS_ARRAY(it)) {
      bson_append_array_begin(out, key, key_len, &sub);
      EscapeInto(&child, &sub, escape);
      bson_append_array_end(out, &sub);
      continue;
    }
    bool dollar = false;
    for (bson_iter_t keys = child; escape && bson_iter_next(&keys);) dollar |= bson_iter_key(&keys)[0] == '$';
    bson_t wrapper;
    bson_t* parent = out;
    if (dollar) {
      bson_append_document_begin(out, key, key_len, &wrapper);
      parent = &wrapper;
    }
    bson_append_document_begin(parent, dollar ? ejson::kEscapeKey.data() : key,
                               dollar ? static_cast<int>(ejson::kEscapeKey.size()) : key_len, &sub);
    EscapeInto(&child, &sub, escape);
    bson_append_document_end(parent, &sub);
    if (dollar) bson_append_document_end(out, &wrapper);
  }
}

// Whether the copy EscapeInto makes holds exactly the document's bytes (wrappers aside). Not so for
// some corrupt documents, which the copy repairs or cuts short where libbson's writer skips a value
// or fails (a sub-document whose last byte is not 0, a dbPointer or code whose text holds a NUL, an
// element after a damaged one); bson_validate is no test for it, libbson 1.23 passes some of them.
// The reference is the old encoder's output, but libbson's writer is the rule, so a comparison
// with the reference means something only for documents that copy exactly.
inline bool CopiesExactly(const bson_t* doc) {
  bson_t copy = BSON_INITIALIZER;
  bson_iter_t it;
  if (bson_iter_init(&it, doc)) EscapeInto(&it, &copy, /*escape=*/false);
  const bool same = copy.len == doc->len && memcmp(bson_get_data(&copy), bson_get_data(doc), doc->len) == 0;
  bson_destroy(&copy);
  return same;
}

inline std::optional<std::string> TakeLibbsonJson(char* json) {
  if (json == nullptr) return std::nullopt;
  std::string out(json);
  bson_free(json);
  return out;
}

// libbson's canonical Extended JSON of `doc` after the escape; nullopt where libbson returns NULL.
inline std::optional<std::string> LibbsonCanonical(const bson_t* doc) {
  if (!NeedsEscape(doc)) return TakeLibbsonJson(bson_as_canonical_extended_json(doc, nullptr));
  bson_t escaped = BSON_INITIALIZER;
  bson_iter_t it;
  if (bson_iter_init(&it, doc)) EscapeInto(&it, &escaped);
  auto out = TakeLibbsonJson(bson_as_canonical_extended_json(&escaped, nullptr));
  bson_destroy(&escaped);
  return out;
}

// The value `it` points at, as the reference wrote it: the canonical form of {"v": value}, cut.
inline std::optional<std::string> LibbsonCanonicalValue(const bson_iter_t* it) {
  static constexpr std::string_view kPrefix = "{ \"v\" : ";
  static constexpr std::string_view kSuffix = " }";
  bson_t wrapper = BSON_INITIALIZER;
  bson_append_iter(&wrapper, "v", 1, it);
  auto json = LibbsonCanonical(&wrapper);
  bson_destroy(&wrapper);
  if (!json) return std::nullopt;
  return json->substr(kPrefix.size(), json->size() - kPrefix.size() - kSuffix.size());
}

// `text` as the content of the JSON string nlohmann::ordered_json's dump wrote (quotes cut off).
inline std::string NlohmannStringContent(std::string_view text) {
  std::string dumped = nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return dumped.substr(1, dumped.size() - 2);
}

// ---------------------------------------------------------------------------------------------
// Hostile documents

class RandomBson {
 public:
  explicit RandomBson(uint64_t seed) : rng_(seed) {}

  // A document of up to `fields` fields nested up to `depth` levels, every BSON type, strings and
  // names full of quotes, backslashes, control characters, NULs, multi-byte characters, $ names
  // and, with probability `bad_utf8` per string, bytes that are not UTF-8.
  void Document(bson_t* out, int fields, int depth, double bad_utf8) {
    bad_utf8_ = bad_utf8;
    Members(out, Below(fields), depth, /*array=*/false);
  }

  // One value appended as `key`.
  void Value(bson_t* out, const std::string& key, int depth) {
    const char* k = key.data();
    const int kl = static_cast<int>(key.size());
    switch (Below(depth > 0 ? 22 : 20)) {
      case 0: bson_append_double(out, k, kl, Double()); break;
      case 1: {
        std::string s = Text(/*nul=*/true);
        bson_append_utf8(out, k, kl, s.data(), static_cast<int>(s.size()));
        break;
      }
      case 2: {
        bson_decimal128_t d;
        if (Chance(0.5)) {
          static const char* kDecimals[] = {"0", "-0", "1.5", "-1234.50", "1E+6144", "1E-6176", "NaN", "-NaN",
                                            "Infinity", "-Infinity", "9999999999999999999999999999999999",
                                            "0.000001", "1.23E-40", "-0E+3", "12345678901234567890E-10"};
          bson_decimal128_from_string(kDecimals[Below(std::size(kDecimals))], &d);
        } else {
          d.high = rng_();  // any bit pattern, non-canonical ones included
          d.low = rng_();
        }
        bson_append_decimal128(out, k, kl, &d);
        break;
      }
      case 3: {
        static const uint8_t kSubtypes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 0x81, 0xff, 0x7f, 0x10};
        std::string bytes(Below(40), '\0');
        for (char& c : bytes) c = static_cast<char>(rng_());
        bson_append_binary(out, k, kl, static_cast<bson_subtype_t>(kSubtypes[Below(std::size(kSubtypes))]),
                           reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<uint32_t>(bytes.size()));
        break;
      }
      case 4: bson_append_undefined(out, k, kl); break;
      case 5: {
        bson_oid_t oid;
        for (uint8_t& b : oid.bytes) b = static_cast<uint8_t>(rng_());
        bson_append_oid(out, k, kl, &oid);
        break;
      }
      case 6: bson_append_bool(out, k, kl, Chance(0.5)); break;
      case 7: {
        static const int64_t kDates[] = {0, -1, 1, INT64_MIN, INT64_MAX, -62135596800000, 253402300800000,
                                         1733040000000};
        bson_append_date_time(out, k, kl, Chance(0.5) ? kDates[Below(std::size(kDates))] : Int64());
        break;
      }
      case 8: bson_append_null(out, k, kl); break;
      case 9: {
        static const char* kOptions[] = {"", "i", "xusmli", "iiii", "zqy", "mx", "abcdefghijklmnopqrstuvwxyz", "u"};
        bson_append_regex(out, k, kl, Text(/*nul=*/false).c_str(), kOptions[Below(std::size(kOptions))]);
        break;
      }
      case 10: {
        bson_oid_t oid;
        for (uint8_t& b : oid.bytes) b = static_cast<uint8_t>(rng_());
        bson_append_dbpointer(out, k, kl, Text(/*nul=*/false).c_str(), &oid);
        break;
      }
      case 11: {
        std::string s = Text(/*nul=*/false);
        bson_append_code(out, k, kl, s.c_str());
        break;
      }
      case 12: {
        std::string s = Text(/*nul=*/true);
        bson_append_symbol(out, k, kl, s.data(), static_cast<int>(s.size()));
        break;
      }
      case 13: {
        bson_t scope = BSON_INITIALIZER;
        if (depth > 0) Members(&scope, Below(4), depth - 1, false);
        bson_append_code_with_scope(out, k, kl, Text(/*nul=*/false).c_str(), &scope);
        bson_destroy(&scope);
        break;
      }
      case 14: {
        static const int32_t kInts[] = {0, -1, 1, INT32_MIN, INT32_MAX};
        bson_append_int32(out, k, kl, Chance(0.5) ? kInts[Below(std::size(kInts))] : static_cast<int32_t>(rng_()));
        break;
      }
      case 15: bson_append_timestamp(out, k, kl, static_cast<uint32_t>(rng_()), Chance(0.3) ? UINT32_MAX : 0); break;
      case 16: bson_append_int64(out, k, kl, Int64()); break;
      case 17: bson_append_maxkey(out, k, kl); break;
      case 18: bson_append_minkey(out, k, kl); break;
      case 19: {
        bson_t child;
        bson_append_document_begin(out, k, kl, &child);  // empty, or names only
        if (Chance(0.5)) bson_append_int32(&child, Name().c_str(), -1, 1);
        bson_append_document_end(out, &child);
        break;
      }
      case 20: {
        bson_t child;
        bson_append_document_begin(out, k, kl, &child);
        Members(&child, Below(6), depth - 1, false);
        bson_append_document_end(out, &child);
        break;
      }
      default: {
        bson_t child;
        bson_append_array_begin(out, k, kl, &child);
        Members(&child, Below(6), depth - 1, true);
        bson_append_array_end(out, &child);
        break;
      }
    }
  }

  // A chain of `levels` nested documents and arrays (some with $ names), a number at the bottom.
  void Chain(bson_t* out, int levels) {
    if (levels == 0) {
      bson_append_int32(out, "n", 1, 7);
      return;
    }
    bson_t child;
    const bool array = Chance(0.3);
    const char* key = Chance(0.2) ? "$d" : "d";
    if (array) {
      bson_append_array_begin(out, key, -1, &child);
      bson_t inner;
      bson_append_document_begin(&child, "0", 1, &inner);
      Chain(&inner, levels - 1);
      bson_append_document_end(&child, &inner);
      bson_append_array_end(out, &child);
    } else {
      bson_append_document_begin(out, key, -1, &child);
      Chain(&child, levels - 1);
      bson_append_document_end(out, &child);
    }
  }

  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  // Text as strings hold it: `nul` allows NUL bytes (strings and symbols carry a length).
  std::string Text(bool nul) {
    static const char* kPieces[] = {"a",  "plain text ", "\"", "\\", "\n", "\t", "\b", "\f", "\r", "\x01", "\x1f",
                                    "\x7f", "/", "é",  "—",   "🚚", "ß",  "\xe2\x80\xa8", "{", "}", "$", " : ",
                                    "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf", "\xee\x80\x80"};
    static const char* kBad[] = {"\xc0\x80", "\xff", "\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                 "\xc1\xbf", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xc3\x28"};
    std::string s;
    for (uint64_t n = Below(12); n > 0; --n) {
      if (nul && Chance(0.05)) {
        s.push_back('\0');
      } else if (Chance(bad_utf8_)) {
        s += kBad[Below(std::size(kBad))];
      } else {
        s += kPieces[Below(std::size(kPieces))];
      }
    }
    return s;
  }

  std::string Name() {
    static const char* kNames[] = {"_id", "a", "", "$x", "$numberLong", "$oid", "$m2mDocument", "$", "x.y", "0",
                                   "$date"};
    return Chance(0.5) ? kNames[Below(std::size(kNames))] : Text(/*nul=*/false);
  }

  double Double() {
    static const double kDoubles[] = {0.0, -0.0, 1.0, -1.0, 0.1, 1e21, 1e20, 123456789012345678.0, 1e-7, 5e-324,
                                      1.7976931348623157e308, std::numeric_limits<double>::quiet_NaN(),
                                      -std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity(), 3.0, 1e100, 2.5e-5, 9007199254740993.0};
    if (Chance(0.4)) return kDoubles[Below(std::size(kDoubles))];
    if (Chance(0.3)) return static_cast<double>(static_cast<int64_t>(rng_()) >> Below(64));
    double d;
    const uint64_t bits = rng_();
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  int64_t Int64() {
    static const int64_t kInts[] = {0, -1, INT64_MIN, INT64_MAX, INT32_MIN - int64_t{1}, 1LL << 53};
    return Chance(0.4) ? kInts[Below(std::size(kInts))] : static_cast<int64_t>(rng_()) >> Below(64);
  }

 private:
  void Members(bson_t* out, uint64_t n, int depth, bool array) {
    for (uint64_t i = 0; i < n; ++i) Value(out, array ? std::to_string(i) : Name(), depth);
  }

  std::mt19937_64 rng_;
  double bad_utf8_ = 0;
};

}  // namespace m2m::testing
