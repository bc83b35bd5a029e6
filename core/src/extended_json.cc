#include "extended_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

namespace m2m::ejson {
namespace {

// nlohmann's ordered_map, except that a field name read twice is kept twice, in order, as BSON and
// libbson's reader keep it (ordered_map would keep the last value in the first one's place): the
// parser adds each member through operator[]. Lookups (find) see the first copy.
template <class Key, class T, class Compare, class Allocator>
struct MembersInOrder : nlohmann::ordered_map<Key, T, Compare, Allocator> {
  using nlohmann::ordered_map<Key, T, Compare, Allocator>::ordered_map;
  T& operator[](const Key& key) { return this->emplace_back(key, T()).second; }
};

using json = nlohmann::basic_json<MembersInOrder>;

std::optional<std::string_view> StringOf(const json& v) {
  if (!v.is_string()) return std::nullopt;
  return std::string_view(v.get_ref<const std::string&>());
}

template <typename T>
std::optional<T> IntegerText(std::string_view s) {
  T v{};
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<uint32_t> Uint32Of(const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= UINT32_MAX) return static_cast<uint32_t>(v.get<uint64_t>());
  if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= UINT32_MAX) {
    return static_cast<uint32_t>(v.get<int64_t>());
  }
  return std::nullopt;
}

std::optional<double> DoubleText(std::string_view s) {
  if (s == "Infinity") return HUGE_VAL;
  if (s == "-Infinity") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string_view::npos) return std::nullopt;
  double d = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return d;
}

std::optional<std::string> Base64(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    int pad = 0;
    uint32_t n = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = s[i + j];
      if (c == '=' && i + 4 == s.size() && j >= 2) {
        ++pad;
        n <<= 6;
        continue;
      }
      int v = value(c);
      if (v < 0 || pad > 0) return std::nullopt;
      n = (n << 6) | static_cast<uint32_t>(v);
    }
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(n & 0xFF);
  }
  return out;
}

std::optional<uint8_t> SubtypeText(std::string_view s) {
  if (s.empty() || s.size() > 2) return std::nullopt;
  uint8_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Relaxed Extended JSON's ISO-8601 date: YYYY-MM-DDTHH:MM[:SS[.fff…]] then Z or ±HH[:]MM.
std::optional<int64_t> IsoDate(std::string_view s) {
  size_t i = 0;
  auto num = [&](size_t n) -> std::optional<int> {
    if (i + n > s.size()) return std::nullopt;
    auto v = IntegerText<int>(s.substr(i, n));
    if (!v || s[i] == '-' || s[i] == '+') return std::nullopt;
    i += n;
    return v;
  };
  auto lit = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  auto y = num(4);
  if (!y || !lit('-')) return std::nullopt;
  auto mo = num(2);
  if (!mo || !lit('-')) return std::nullopt;
  auto d = num(2);
  if (!d || !lit('T')) return std::nullopt;
  auto h = num(2);
  if (!h || !lit(':')) return std::nullopt;
  auto mi = num(2);
  if (!mi) return std::nullopt;
  int sec = 0, ms = 0;
  if (lit(':')) {
    auto sv = num(2);
    if (!sv) return std::nullopt;
    sec = *sv;
    if (lit('.')) {
      size_t start = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      if (i == start) return std::nullopt;
      std::string frac(s.substr(start, std::min<size_t>(3, i - start)));
      frac.resize(3, '0');
      ms = std::atoi(frac.c_str());
    }
  }
  int offset_min = 0;
  if (!lit('Z')) {
    int sign = lit('+') ? 1 : lit('-') ? -1 : 0;
    if (sign == 0) return std::nullopt;
    auto oh = num(2);
    lit(':');
    auto om = num(2);
    if (!oh || !om) return std::nullopt;
    offset_min = sign * (*oh * 60 + *om);
  }
  if (i != s.size() || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 || sec > 60) {
    return std::nullopt;
  }
  int64_t days = DaysFromCivil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
  return (((days * 24 + *h) * 60 + *mi - offset_min) * 60 + sec) * 1000 + ms;
}

class Reader {
 public:
  Status Document(const json& object, bson_t* out, int depth);

 private:
  Status Value(const char* key, int key_len, const json& v, bson_t* out, int depth);
  // Appends the typed value `object` spells, if its keys are exactly a valid type wrapper.
  bool TypeWrapper(const char* key, int key_len, const json& object, bson_t* out);
  Status Fail(const std::string& why) const { return Status::Invalid("invalid Extended JSON document: " + why); }
};

Status Reader::Document(const json& object, bson_t* out, int depth) {
  if (depth > kMaxJsonDepth) return Fail("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  for (const auto& [k, v] : object.items()) {
    if (k.find('\0') != std::string::npos) return Fail("a field name contains a NUL character");
    M2M_RETURN_NOT_OK(Value(k.data(), static_cast<int>(k.size()), v, out, depth));
  }
  return Status::OK();
}

Status Reader::Value(const char* key, int key_len, const json& v, bson_t* out, int depth) {
  switch (v.type()) {
    case json::value_t::null:
      bson_append_null(out, key, key_len);
      return Status::OK();
    case json::value_t::boolean:
      bson_append_bool(out, key, key_len, v.get<bool>());
      return Status::OK();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        bson_append_double(out, key, key_len, static_cast<double>(v.get<uint64_t>()));
        return Status::OK();
      }
      int64_t n = v.get<int64_t>();
      if (n >= INT32_MIN && n <= INT32_MAX) {
        bson_append_int32(out, key, key_len, static_cast<int32_t>(n));
      } else {
        bson_append_int64(out, key, key_len, n);
      }
      return Status::OK();
    }
    case json::value_t::number_float:
      bson_append_double(out, key, key_len, v.get<double>());
      return Status::OK();
    case json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      bson_append_utf8(out, key, key_len, s.data(), static_cast<int>(s.size()));
      return Status::OK();
    }
    case json::value_t::array: {
      if (depth + 1 > kMaxJsonDepth) return Fail("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      bson_t child;
      bson_append_array_begin(out, key, key_len, &child);
      int i = 0;
      for (const json& e : v) {
        char buf[16];
        const char* k = nullptr;
        size_t len = bson_uint32_to_string(static_cast<uint32_t>(i++), &k, buf, sizeof buf);
        Status st = Value(k, static_cast<int>(len), e, &child, depth + 1);
        if (!st.ok()) {
          bson_append_array_end(out, &child);
          return st;
        }
      }
      bson_append_array_end(out, &child);
      return Status::OK();
    }
    case json::value_t::object: {
      const json* content = &v;
      if (v.size() == 1 && v.begin().key() == kEscapeKey && v.begin().value().is_object()) {
        content = &v.begin().value();  // an escaped document: its keys are names, never a type
      } else if (!v.empty() && v.begin().key().starts_with('$') && TypeWrapper(key, key_len, v, out)) {
        return Status::OK();
      }
      bson_t child;
      bson_append_document_begin(out, key, key_len, &child);
      Status st = Document(*content, &child, depth + 1);
      bson_append_document_end(out, &child);
      return st;
    }
    default:
      return Fail("unexpected JSON value");
  }
}

bool Reader::TypeWrapper(const char* key, int key_len, const json& o, bson_t* out) {
  auto member = [&](std::string_view name) -> const json* {
    auto it = o.find(std::string(name));
    return it == o.end() ? nullptr : &*it;
  };
  const std::string& first = o.begin().key();
  if (o.size() == 1) {
    const json& v = o.begin().value();
    auto s = StringOf(v);
    if (first == "$oid") {
      if (!s || s->size() != 24 || !bson_oid_is_valid(s->data(), s->size())) return false;
      bson_oid_t oid;
      bson_oid_init_from_string(&oid, std::string(*s).c_str());
      return bson_append_oid(out, key, key_len, &oid);
    }
    if (first == "$symbol" && s) return bson_append_symbol(out, key, key_len, s->data(), static_cast<int>(s->size()));
    if (first == "$code" && s) return bson_append_code(out, key, key_len, std::string(*s).c_str());
    if (first == "$numberInt" && s) {
      auto n = IntegerText<int32_t>(*s);
      return n && bson_append_int32(out, key, key_len, *n);
    }
    if (first == "$numberLong" && s) {
      auto n = IntegerText<int64_t>(*s);
      return n && bson_append_int64(out, key, key_len, *n);
    }
    if (first == "$numberDouble" && s) {
      auto d = DoubleText(*s);
      return d && bson_append_double(out, key, key_len, *d);
    }
    if (first == "$numberDecimal" && s) {
      bson_decimal128_t dec;
      return bson_decimal128_from_string_w_len(s->data(), static_cast<int>(s->size()), &dec) &&
             bson_append_decimal128(out, key, key_len, &dec);
    }
    if (first == "$binary" && v.is_object() && v.size() == 2) {
      auto b64 = v.contains("base64") ? StringOf(v["base64"]) : std::nullopt;
      auto sub = v.contains("subType") ? StringOf(v["subType"]) : std::nullopt;
      auto bytes = b64 ? Base64(*b64) : std::nullopt;
      auto subtype = sub ? SubtypeText(*sub) : std::nullopt;
      if (!bytes || !subtype) return false;
      return bson_append_binary(out, key, key_len, static_cast<bson_subtype_t>(*subtype),
                                reinterpret_cast<const uint8_t*>(bytes->data()), static_cast<uint32_t>(bytes->size()));
    }
    if (first == "$uuid" && s) {
      std::string hex;
      for (char c : *s) {
        if (c != '-') hex += c;
      }
      if (s->size() != 36 || hex.size() != 32 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
        return false;
      }
      uint8_t bytes[16];
      for (int i = 0; i < 16; ++i) bytes[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
      return bson_append_binary(out, key, key_len, BSON_SUBTYPE_UUID, bytes, 16);
    }
    if (first == "$timestamp" && v.is_object() && v.size() == 2 && v.contains("t") && v.contains("i")) {
      auto t = Uint32Of(v["t"]);
      auto i = Uint32Of(v["i"]);
      return t && i && bson_append_timestamp(out, key, key_len, *t, *i);
    }
    if (first == "$regularExpression" && v.is_object() && v.size() == 2 && v.contains("pattern") &&
        v.contains("options")) {
      auto p = StringOf(v["pattern"]);
      auto opts = StringOf(v["options"]);
      if (!p || !opts || p->find('\0') != std::string_view::npos || opts->find('\0') != std::string_view::npos) {
        return false;
      }
      return bson_append_regex(out, key, key_len, std::string(*p).c_str(), std::string(*opts).c_str());
    }
    if (first == "$dbPointer" && v.is_object() && v.size() == 2 && v.contains("$ref") && v.contains("$id")) {
      auto ref = StringOf(v["$ref"]);
      const json& id = v["$id"];
      auto hex = id.is_object() && id.size() == 1 && id.contains("$oid") ? StringOf(id["$oid"]) : std::nullopt;
      if (!ref || !hex || hex->size() != 24 || !bson_oid_is_valid(hex->data(), hex->size())) return false;
      bson_oid_t oid;
      bson_oid_init_from_string(&oid, std::string(*hex).c_str());
      return bson_append_dbpointer(out, key, key_len, std::string(*ref).c_str(), &oid);
    }
    if (first == "$date") {
      std::optional<int64_t> ms;
      if (v.is_object() && v.size() == 1 && v.contains("$numberLong")) {
        if (auto t = StringOf(v["$numberLong"])) ms = IntegerText<int64_t>(*t);
      } else if (s) {
        ms = IsoDate(*s);
      } else if (v.is_number_integer()) {
        ms = v.get<int64_t>();  // legacy Extended JSON (v1): milliseconds as a number
      }
      return ms && bson_append_date_time(out, key, key_len, *ms);
    }
    if (first == "$minKey" && v == 1) return bson_append_minkey(out, key, key_len);
    if (first == "$maxKey" && v == 1) return bson_append_maxkey(out, key, key_len);
    if (first == "$undefined" && v == true) return bson_append_undefined(out, key, key_len);
    return false;
  }
  if (o.size() != 2) return false;
  if (const json* code = member("$code"); code && code->is_string()) {
    const json* scope = member("$scope");
    if (scope == nullptr || !scope->is_object()) return false;
    bson_t scope_doc = BSON_INITIALIZER;
    bool ok = Document(*scope, &scope_doc, 1).ok() &&
              bson_append_code_with_scope(out, key, key_len, code->get_ref<const std::string&>().c_str(), &scope_doc);
    bson_destroy(&scope_doc);
    return ok;
  }
  // Legacy Extended JSON (v1), which Debezium's legacy serialization mode writes.
  if (const json* bin = member("$binary"); bin && bin->is_string()) {
    const json* type = member("$type");
    auto bytes = Base64(bin->get_ref<const std::string&>());
    auto subtype = type ? SubtypeText(StringOf(*type).value_or("")) : std::nullopt;
    if (!bytes || !subtype) return false;
    return bson_append_binary(out, key, key_len, static_cast<bson_subtype_t>(*subtype),
                              reinterpret_cast<const uint8_t*>(bytes->data()), static_cast<uint32_t>(bytes->size()));
  }
  if (const json* re = member("$regex"); re && re->is_string()) {
    const json* opts = member("$options");
    auto o_text = opts ? StringOf(*opts) : std::nullopt;
    const std::string& p = re->get_ref<const std::string&>();
    if (!o_text || p.find('\0') != std::string::npos || o_text->find('\0') != std::string_view::npos) return false;
    return bson_append_regex(out, key, key_len, p.c_str(), std::string(*o_text).c_str());
  }
  return false;
}

}  // namespace

Status Parse(std::string_view text, bson_t* out) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Status::Invalid("invalid Extended JSON document: not valid JSON");
  if (!parsed.is_object()) return Status::Invalid("invalid Extended JSON document: not a JSON object");
  return Reader().Document(parsed, out, 1);
}

}  // namespace m2m::ejson
