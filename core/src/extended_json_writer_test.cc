// The canonical Extended JSON writer against libbson's (the reference in canonical_json_testing.h):
// byte-identical text for every BSON type and edge value, in both spellings, failing exactly where
// libbson returns NULL; and AppendJsonString against nlohmann::json's dump.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "canonical_json_testing.h"
#include "extended_json.h"
#include "m2m/bson_document.h"

namespace m2m {
namespace {

using ejson::Spelling;

// The writer matches the reference on `doc` as a whole and on each of its fields as a value.
// Returns whether libbson had a text for it.
bool ExpectLikeLibbson(const bson_t* doc) {
  const std::optional<std::string> expected = testing::LibbsonCanonical(doc);
  std::string text = "prefix";  // appended to, and left as it was on failure
  const bool ok = ejson::AppendCanonical(doc, Spelling::kText, text);
  EXPECT_EQ(ok, expected.has_value()) << (expected ? *expected : text);
  std::string quoted = "prefix";
  EXPECT_EQ(ejson::AppendCanonical(doc, Spelling::kJsonString, quoted), ok);
  if (!ok || !expected) {
    EXPECT_EQ(text, "prefix");
    EXPECT_EQ(quoted, "prefix");
    EXPECT_EQ(BsonDocument(doc).ToCanonicalJson(), "");
    return false;
  }
  EXPECT_EQ(text, "prefix" + *expected);
  EXPECT_EQ(quoted, "prefix" + testing::NlohmannStringContent(*expected));
  bson_iter_t it;
  EXPECT_TRUE(bson_iter_init(&it, doc));
  while (bson_iter_next(&it)) {
    const std::optional<std::string> value = testing::LibbsonCanonicalValue(&it);
    std::string got;
    EXPECT_EQ(ejson::AppendCanonicalValue(&it, Spelling::kText, got), value.has_value()) << bson_iter_key(&it);
    if (value) {
      EXPECT_EQ(got, *value);
    }
  }
  return true;
}

BsonDocument Json(std::string_view ejson) {
  auto doc = BsonDocument::FromJson(ejson);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(*doc) : BsonDocument();
}

TEST(CanonicalWriterTest, EveryTypeAndEdgeValueAsLibbson) {
  BsonDocument d;
  bson_t* b = d.mutable_get();
  for (double v : {0.0, -0.0, 1.0, -1.0, 3.0, 0.1, 1e20, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 1e100, -2.5e-5,
                   9007199254740993.0, 123456789.125, std::numeric_limits<double>::quiet_NaN(),
                   -std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    bson_append_double(b, "double", -1, v);
  }
  for (int32_t v : {0, -1, INT32_MIN, INT32_MAX}) bson_append_int32(b, "int32", -1, v);
  for (int64_t v : {int64_t{0}, int64_t{-1}, INT64_MIN, INT64_MAX}) bson_append_int64(b, "int64", -1, v);
  for (const char* v : {"0", "-0", "1.50", "-1234.5E+10", "NaN", "-NaN", "Infinity", "-Infinity", "1E+6144",
                        "9999999999999999999999999999999999", "1E-6176", "0E-6176", "0.000001"}) {
    bson_decimal128_t dec;
    ASSERT_TRUE(bson_decimal128_from_string(v, &dec)) << v;
    bson_append_decimal128(b, "decimal", -1, &dec);
  }
  bson_decimal128_t noncanonical{~uint64_t{0}, ~uint64_t{0}};
  bson_append_decimal128(b, "decimal", -1, &noncanonical);
  const uint8_t bytes[] = {0, 1, 2, 0xfb, 0xff, 0x3e, 0x3f};
  for (int subtype : {0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0xff}) {
    for (uint32_t size : {0u, 1u, 2u, 3u, 4u, 7u}) {
      bson_append_binary(b, "binary", -1, static_cast<bson_subtype_t>(subtype), bytes, size);
    }
  }
  bson_append_undefined(b, "undefined", -1);
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "65a1f0c2e4b0a1b2c3d4e5f6");
  bson_append_oid(b, "oid", -1, &oid);
  bson_append_bool(b, "true", -1, true);
  bson_append_bool(b, "false", -1, false);
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{-62135596800001}, int64_t{253402300800000}, INT64_MIN, INT64_MAX}) {
    bson_append_date_time(b, "date", -1, v);
  }
  bson_append_null(b, "null", -1);
  bson_append_regex(b, "regex", -1, "^a\"b\\\\.*\n$", "xusmlizq");
  bson_append_regex(b, "regex", -1, "", "");
  bson_append_regex(b, "regex", -1, "é", "iiu");
  bson_append_dbpointer(b, "dbpointer", -1, "db.coll\"ection", &oid);
  bson_append_code(b, "code", -1, "function () { return \"x\\n\"; }");
  bson_append_symbol(b, "symbol", -1, "sym\0bol", 7);
  bson_t scope = BSON_INITIALIZER;
  bson_append_int32(&scope, "x", -1, 1);
  bson_t scope_sub;
  bson_append_document_begin(&scope, "sub", -1, &scope_sub);
  bson_append_int32(&scope_sub, "$notEscapedInAScope", -1, 1);
  bson_append_document_end(&scope, &scope_sub);
  bson_append_code_with_scope(b, "codewscope", -1, "x + 1", &scope);
  bson_destroy(&scope);
  bson_t empty_scope = BSON_INITIALIZER;
  bson_append_code_with_scope(b, "codewscope", -1, "y", &empty_scope);
  bson_append_timestamp(b, "timestamp", -1, 0, 0);
  bson_append_timestamp(b, "timestamp", -1, UINT32_MAX, UINT32_MAX);
  bson_append_maxkey(b, "maxkey", -1);
  bson_append_minkey(b, "minkey", -1);
  bson_t child;
  bson_append_document_begin(b, "empty document", -1, &child);
  bson_append_document_end(b, &child);
  bson_append_array_begin(b, "empty array", -1, &child);
  bson_append_array_end(b, &child);
  const char strings[] = "\"\\/\b\f\n\r\t\x01\x1f\x7f\0é—🚚\xe2\x80\xa8\xef\xbf\xbd\xf4\x8f\xbf\xbf";
  bson_append_utf8(b, "string", -1, strings, sizeof strings - 1);
  bson_append_utf8(b, "", -1, "", 0);
  bson_append_utf8(b, "key \"with\" \\ \n\x01 é 🚚", -1, "x", 1);
  bson_append_int32(b, "$top", -1, 1);
  ExpectLikeLibbson(d.get());
  ExpectLikeLibbson(BsonDocument().get());
}

TEST(CanonicalWriterTest, NestedDocumentsArraysAndTheEscapeAsLibbson) {
  ExpectLikeLibbson(Json(R"({"a": {"b": [1, {"c": []}, [], {}], "d": {}}, "e": [[[{"f": null}]]]})").get());
  // $ names at the top stay; embedded ones, in arrays too, are wrapped, wrappers inside wrappers.
  BsonDocument d;
  bson_t sub, arr, el, inner;
  bson_append_int32(d.mutable_get(), "$top", -1, 1);
  bson_append_document_begin(d.mutable_get(), "sub", -1, &sub);
  bson_append_utf8(&sub, "$numberLong", -1, "5", 1);
  bson_append_document_begin(&sub, "$m2mDocument", -1, &inner);
  bson_append_int64(&inner, "$numberLong", -1, 7);
  bson_append_document_end(&sub, &inner);
  bson_append_document_end(d.mutable_get(), &sub);
  bson_append_array_begin(d.mutable_get(), "a", -1, &arr);
  bson_append_document_begin(&arr, "0", -1, &el);
  bson_append_int32(&el, "x", -1, 1);
  bson_append_int32(&el, "$y", -1, 2);
  bson_append_document_end(&arr, &el);
  bson_append_array_end(d.mutable_get(), &arr);
  ExpectLikeLibbson(d.get());
  std::string text;
  ASSERT_TRUE(ejson::AppendCanonical(d.get(), Spelling::kText, text));
  EXPECT_EQ(text,
            R"({ "$top" : { "$numberInt" : "1" }, "sub" : { "$m2mDocument" : { "$numberLong" : "5", "$m2mDocument" : )"
            R"({ "$m2mDocument" : { "$numberLong" : { "$numberLong" : "7" } } } } }, "a" : [ { "$m2mDocument" : )"
            R"({ "x" : { "$numberInt" : "1" }, "$y" : { "$numberInt" : "2" } } } ] })");
}

// libbson writes "{ ... }" for what is nested 200 levels deep; the escape's wrappers count.
TEST(CanonicalWriterTest, NestingPast200LevelsIsCutAsLibbsonCutsIt) {
  for (int levels : {198, 199, 200, 201, 202, 260}) {
    for (bool dollar : {false, true}) {
      for (bool array : {false, true}) {
        SCOPED_TRACE(std::to_string(levels) + (dollar ? " $" : "") + (array ? " []" : ""));
        // Built inside out: each level is {"d": <below>} or {"d": [<below>]}, some named "$d".
        BsonDocument doc;
        bson_append_int32(doc.mutable_get(), "n", -1, 1);
        for (int i = 0; i < levels; ++i) {
          BsonDocument outer;
          const char* key = dollar && i % 7 == 3 ? "$d" : "d";
          if (array && i % 5 == 2) {
            bson_t a;
            bson_append_array_begin(outer.mutable_get(), key, -1, &a);
            bson_append_document(&a, "0", 1, doc.get());
            bson_append_array_end(outer.mutable_get(), &a);
          } else {
            bson_append_document(outer.mutable_get(), key, -1, doc.get());
          }
          doc = std::move(outer);
        }
        ExpectLikeLibbson(doc.get());
      }
    }
  }
  testing::RandomBson random(7);
  for (int levels = 190; levels < 215; ++levels) {
    BsonDocument doc;
    random.Chain(doc.mutable_get(), levels);
    ExpectLikeLibbson(doc.get());
  }
}

// Where libbson has no JSON for a document (it returns NULL), the writer has none: the caller gets
// "" as before (ToCanonicalJson) and the event still encodes.
TEST(CanonicalWriterTest, TextThatIsNotUtf8FailsWhereLibbsonFails) {
  const std::vector<std::string> bad = {"\xff",         "\x80",         "a\xc3",         "\xc3\x28",
                                        "\xc0\x80",     "\xc1\xbf",     "\xe0\x80\x80",  "\xed\xa0\x80",
                                        "\xe2\x82",     "\xf4\x90\x80\x80", "\xf0\x80\x80\x80", "\xf8\x88\x80\x80\x80"};
  for (const std::string& s : bad) {
    SCOPED_TRACE(testing::NlohmannStringContent(s));
    auto check = [](auto append) {
      BsonDocument d;
      bson_append_int32(d.mutable_get(), "ok", -1, 1);
      bson_t sub;
      bson_append_document_begin(d.mutable_get(), "sub", -1, &sub);
      append(&sub);
      bson_append_document_end(d.mutable_get(), &sub);
      ExpectLikeLibbson(d.get());
      std::string out;
      EXPECT_FALSE(ejson::AppendCanonical(d.get(), Spelling::kText, out)) << out;
    };
    const int n = static_cast<int>(s.size());
    check([&](bson_t* b) { bson_append_utf8(b, "v", -1, s.data(), n); });
    check([&](bson_t* b) { bson_append_int32(b, s.c_str(), -1, 1); });
    check([&](bson_t* b) { bson_append_symbol(b, "v", -1, s.data(), n); });
    check([&](bson_t* b) { bson_append_code(b, "v", -1, s.c_str()); });
    check([&](bson_t* b) { bson_append_regex(b, "v", -1, s.c_str(), "i"); });
    check([&](bson_t* b) {
      bson_oid_t oid;
      bson_oid_init_from_string(&oid, "65a1f0c2e4b0a1b2c3d4e5f6");
      bson_append_dbpointer(b, "v", -1, s.c_str(), &oid);
    });
    check([&](bson_t* b) {
      bson_t scope = BSON_INITIALIZER;
      bson_append_utf8(&scope, "v", -1, s.data(), n);
      bson_append_code_with_scope(b, "v", -1, "x", &scope);
      bson_destroy(&scope);
    });
    check([&](bson_t* b) {  // an array index is checked though never written
      bson_t arr;
      bson_append_array_begin(b, "v", -1, &arr);
      bson_append_int32(&arr, s.c_str(), -1, 1);
      bson_append_array_end(b, &arr);
    });
  }
}

// BSON built byte by byte: a dbPointer whose name holds a NUL (libbson checks the whole name and
// writes it up to the NUL), and corrupt documents (libbson returns NULL).
TEST(CanonicalWriterTest, HandMadeBsonAsLibbson) {
  auto view = [](const std::string& bytes, auto check) {
    bson_t doc;
    ASSERT_TRUE(bson_init_static(&doc, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    check(&doc);
  };
  auto le32 = [](uint32_t n) { return std::string{char(n), char(n >> 8), char(n >> 16), char(n >> 24)}; };
  auto document = [&](const std::string& elements) { return le32(uint32_t(elements.size() + 5)) + elements + '\0'; };
  const std::string oid(12, '\x11');
  for (const std::string& name : {std::string("ab\0cd", 5), std::string("ab\0\xc0\x80", 5),
                                  std::string("ab\0\xff", 4), std::string("\xc0\x80", 2)}) {
    view(document(std::string("\x0c" "p\0", 3) + le32(uint32_t(name.size() + 1)) + name + '\0' + oid),
         [](const bson_t* doc) { ExpectLikeLibbson(doc); });
  }
  // A string whose length runs past the document; an unknown type; an element after the end mark.
  for (const std::string& elements : {std::string("\x02" "s\0", 3) + le32(100) + "abc" + '\0', std::string("\x42" "x\0", 3),
                                      std::string("\x0a" "n\0\0\x0a" "m\0", 7)}) {
    view(document(elements), [](const bson_t* doc) {
      std::string out;
      EXPECT_FALSE(ejson::AppendCanonical(doc, Spelling::kText, out)) << out;
      EXPECT_EQ(bson_as_canonical_extended_json(doc, nullptr), nullptr);
    });
  }
}

TEST(CanonicalWriterTest, RandomDocumentsAsLibbson) {
  testing::RandomBson random(20261203);
  int written = 0;
  for (int i = 0; i < 4000; ++i) {
    BsonDocument doc;
    random.Document(doc.mutable_get(), 12, 6, i % 4 == 0 ? 0.01 : 0.0);
    SCOPED_TRACE(i);
    written += ExpectLikeLibbson(doc.get());
    if (HasFailure()) return;
  }
  EXPECT_GT(written, 3000);  // most have a text; the others test the failures
}

// Byte flips in random documents: wherever libbson's own writer still runs unescaped (no $ names
// before the damage), the writer gives its result or fails with it.
TEST(CanonicalWriterTest, DamagedDocumentsAsLibbson) {
  testing::RandomBson random(42);
  int compared = 0, written = 0;
  for (int i = 0; i < 4000; ++i) {
    BsonDocument doc;
    random.Document(doc.mutable_get(), 8, 4, 0.0);
    std::string bytes(reinterpret_cast<const char*>(bson_get_data(doc.get())), doc.get()->len);
    for (uint64_t flips = 1 + random.Below(3); flips > 0; --flips) {
      bytes[4 + random.Below(bytes.size() - 5)] = static_cast<char>(random.Below(256));
    }
    bson_t damaged;
    if (!bson_init_static(&damaged, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) ||
        testing::NeedsEscape(&damaged)) {
      continue;
    }
    const std::optional<std::string> expected = testing::TakeLibbsonJson(bson_as_canonical_extended_json(&damaged, nullptr));
    std::string got;
    ASSERT_EQ(ejson::AppendCanonical(&damaged, Spelling::kText, got), expected.has_value()) << i << " " << got;
    if (expected) {
      ASSERT_EQ(got, *expected) << i;
    }
    ++compared;
    written += expected.has_value();
  }
  EXPECT_GT(compared, 2000);
  EXPECT_GT(written, 200);
}

TEST(JsonStringTest, AsNlohmannDumpsIt) {
  auto expect_like_nlohmann = [](const std::string& s) {
    std::string got = "x";
    const bool utf8 = ejson::AppendJsonString(s, got);
    const std::string expected =
        nlohmann::ordered_json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    ASSERT_EQ(got, "x" + expected) << testing::NlohmannStringContent(s);
    bool strict_dump_takes_it = true;  // nlohmann's strict handler throws where replace writes U+FFFD
    try {
      nlohmann::ordered_json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
    } catch (const nlohmann::json::type_error&) {
      strict_dump_takes_it = false;
    }
    ASSERT_EQ(utf8, strict_dump_takes_it) << testing::NlohmannStringContent(s);
  };
  for (const std::string& s : {std::string(), std::string("plain"), std::string("\"\\/\b\f\n\r\t\x01\x1f\x7f"),
                               std::string("a\0b", 3), std::string("é—🚚\xef\xbf\xbd"), std::string("\xff"),
                               std::string("\xc3"), std::string("\xc3(x"), std::string("\xe2\x82"),
                               std::string("\xe2\x82(\xe2"), std::string("\xe0\x80\x80"), std::string("\xed\xa0\x80"),
                               std::string("\xf0\x90\x80"), std::string("\xf4\x90\x80\x80"), std::string("\xc0\x80"),
                               std::string("\xf8\x88\x80\x80\x80"), std::string("\x80\x80\xbf")}) {
    expect_like_nlohmann(s);
  }
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    std::string s(rng() % 12, '\0');
    for (char& c : s) {
      const uint64_t r = rng();
      // Mostly bytes that start or continue sequences, so that broken ones are common.
      c = static_cast<char>(r % 4 == 0 ? r >> 8 : 0x80 + (r >> 8) % 0x80);
    }
    expect_like_nlohmann(s);
  }
}

}  // namespace
}  // namespace m2m
