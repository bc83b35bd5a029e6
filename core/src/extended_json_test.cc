#include <gtest/gtest.h>

#include <string>

#include "m2m/bson_document.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

BsonDocument Doc(std::string_view ejson) {
  auto doc = BsonDocument::FromJson(ejson);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(*doc) : BsonDocument();
}

// {"sub": <inner>} built with libbson's appenders, so the field names are names whatever they spell.
BsonDocument WithSub(const std::vector<std::pair<std::string, std::string>>& fields) {
  BsonDocument d;
  bson_t sub;
  bson_append_document_begin(d.mutable_get(), "sub", 3, &sub);
  for (const auto& [k, v] : fields) bson_append_utf8(&sub, k.c_str(), -1, v.c_str(), -1);
  bson_append_document_end(d.mutable_get(), &sub);
  return d;
}

TEST(ExtendedJsonTest, DocumentsSpellingTypeWrappersRoundTrip) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> cases = {
      {{"$numberLong", "5"}}, {{"$oid", "65a1b2c3d4e5f60718293a4b"}}, {{"$date", "2024-01-31T00:00:00Z"}},
      {{"$binary", "AAE="}, {"$type", "00"}}, {{"$regex", "a"}, {"$options", ""}}, {{"$symbol", "s"}},
      {{"$code", "x"}}, {{"$numberDecimal", "1.5"}}, {{"$m2mDocument", "x"}}, {{"$", "1"}, {"$$", "2"}},
      {{"$oid", "not hex"}}, {{"$db", "novels"}, {"$ref", "2007042768"}}};
  for (const auto& fields : cases) {
    BsonDocument d = WithSub(fields);
    SCOPED_TRACE(d.ToRelaxedJson());
    std::string text = d.ToCanonicalJson();
    EXPECT_NE(text.find("$m2mDocument"), std::string::npos) << text;
    auto back = BsonDocument::FromJson(text);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == d) << back->ToCanonicalJson();
  }
}

TEST(ExtendedJsonTest, EscapeReachesDocumentsInArraysAndNestedEscapes) {
  BsonDocument d;
  bson_t arr, el, inner;
  bson_append_array_begin(d.mutable_get(), "a", 1, &arr);
  bson_append_document_begin(&arr, "0", 1, &el);
  bson_append_document_begin(&el, "$m2mDocument", -1, &inner);
  bson_append_int64(&inner, "$numberLong", -1, 7);
  bson_append_document_end(&el, &inner);
  bson_append_document_end(&arr, &el);
  bson_append_array_end(d.mutable_get(), &arr);
  bson_append_int32(d.mutable_get(), "$top", -1, 1);  // the top level is never a type wrapper
  auto back = BsonDocument::FromJson(d.ToCanonicalJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == d) << d.ToCanonicalJson() << " read back as " << back->ToCanonicalJson();
}

// BSON allows a field name twice in one document, and libbson's reader and writer keep both; so does
// our reader, which reads the escaped form: make fuzz found the first copy dropped on the way back.
TEST(ExtendedJsonTest, ARepeatedFieldNameKeepsEveryCopyThroughTheEscape) {
  BsonDocument d;
  bson_append_int32(d.mutable_get(), "n", 1, 1);
  bson_append_utf8(d.mutable_get(), "s", 1, "first", -1);
  bson_append_int32(d.mutable_get(), "n", 1, 2);
  bson_t sub;
  bson_append_document_begin(d.mutable_get(), "sub", 3, &sub);
  bson_append_utf8(&sub, "$k", 2, "a", -1);
  bson_append_utf8(&sub, "$k", 2, "b", -1);
  bson_append_document_end(d.mutable_get(), &sub);
  std::string text = d.ToCanonicalJson();
  ASSERT_NE(text.find("$m2mDocument"), std::string::npos) << text;
  auto back = BsonDocument::FromJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == d) << text << " read back as " << back->ToCanonicalJson();
  // Plain JSON read by our reader (an escape elsewhere sends it there) keeps them in order too.
  EXPECT_EQ(Doc(R"({"e": {"$m2mDocument": {}}, "a": 1, "b": 2, "a": 3})").ToRelaxedJson(),
            R"({ "e" : {  }, "a" : 1, "b" : 2, "a" : 3 })");
}

TEST(ExtendedJsonTest, ObjectsThatAreNotExactlyAValidWrapperAreDocuments) {
  // What events written before the escape carry: the specification's parser rule reads them.
  EXPECT_EQ(Doc(R"({"s": {"$oid": "not hex"}})").ToRelaxedJson(), R"({ "s" : { "$oid" : "not hex" } })");
  EXPECT_EQ(Doc(R"({"s": {"$date": "not a date"}})").ToRelaxedJson(), R"({ "s" : { "$date" : "not a date" } })");
  EXPECT_EQ(Doc(R"({"s": {"$numberLong": "5", "x": 1}})").ToRelaxedJson(),
            R"({ "s" : { "$numberLong" : "5", "x" : 1 } })");
  EXPECT_EQ(Doc(R"({"s": {"$": 1, "$$": 2}})").ToRelaxedJson(), R"({ "s" : { "$" : 1, "$$" : 2 } })");
  EXPECT_EQ(Doc(R"({"s": {"$numberInt": "99999999999"}})").ToRelaxedJson(),
            R"({ "s" : { "$numberInt" : "99999999999" } })");
  // Valid wrappers of every form are typed values.
  BsonDocument typed = Doc(
      R"j({"l": {"$numberLong": "5"}, "i": {"$numberInt": "-7"}, "d": {"$numberDouble": "-Infinity"},
          "m": {"$numberDecimal": "1.50"}, "o": {"$oid": "65a1b2c3d4e5f60718293a4b"},
          "t": {"$date": {"$numberLong": "-1000"}}, "t2": {"$date": "2024-01-31T10:20:30.5+01:00"},
          "t3": {"$date": 1558965508000}, "b": {"$binary": {"base64": "AAE=", "subType": "80"}},
          "b2": {"$binary": "AQID", "$type": "00"}, "u": {"$uuid": "01234567-89ab-cdef-0123-456789abcdef"},
          "r": {"$regularExpression": {"pattern": "^a", "options": "i"}}, "r2": {"$regex": "x", "$options": "m"},
          "ts": {"$timestamp": {"t": 1, "i": 2}}, "c": {"$code": "f()"}, "cs": {"$code": "g()", "$scope": {"x": 1}},
          "s": {"$symbol": "sym"}, "p": {"$dbPointer": {"$ref": "c", "$id": {"$oid": "65a1b2c3d4e5f60718293a4b"}}},
          "lo": {"$minKey": 1}, "hi": {"$maxKey": 1}, "un": {"$undefined": true}, "n": 3000000000, "f": 1.5})j");
  EXPECT_EQ(typed.ToCanonicalJson(),
            R"j({ "l" : { "$numberLong" : "5" }, "i" : { "$numberInt" : "-7" }, "d" : { "$numberDouble" : "-Infinity" }, )j"
            R"j("m" : { "$numberDecimal" : "1.50" }, "o" : { "$oid" : "65a1b2c3d4e5f60718293a4b" }, )j"
            R"j("t" : { "$date" : { "$numberLong" : "-1000" } }, "t2" : { "$date" : { "$numberLong" : "1706692830500" } }, )j"
            R"j("t3" : { "$date" : { "$numberLong" : "1558965508000" } }, )j"
            R"j("b" : { "$binary" : { "base64" : "AAE=", "subType" : "80" } }, )j"
            R"j("b2" : { "$binary" : { "base64" : "AQID", "subType" : "00" } }, )j"
            R"j("u" : { "$binary" : { "base64" : "ASNFZ4mrze8BI0VniavN7w==", "subType" : "04" } }, )j"
            R"j("r" : { "$regularExpression" : { "pattern" : "^a", "options" : "i" } }, )j"
            R"j("r2" : { "$regularExpression" : { "pattern" : "x", "options" : "m" } }, )j"
            R"j("ts" : { "$timestamp" : { "t" : 1, "i" : 2 } }, "c" : { "$code" : "f()" }, )j"
            R"j("cs" : { "$code" : "g()", "$scope" : { "x" : { "$numberInt" : "1" } } }, "s" : { "$symbol" : "sym" }, )j"
            R"j("p" : { "$dbPointer" : { "$ref" : "c", "$id" : { "$oid" : "65a1b2c3d4e5f60718293a4b" } } }, )j"
            R"j("lo" : { "$minKey" : 1 }, "hi" : { "$maxKey" : 1 }, "un" : { "$undefined" : true }, )j"
            R"j("n" : { "$numberLong" : "3000000000" }, "f" : { "$numberDouble" : "1.5" } })j");
}

TEST(ExtendedJsonTest, ReadErrorsSayWhy) {
  for (std::string_view bad : {"", "[1]", "{\"a\": }", "{\"a\\u0000b\": 1}"}) {
    auto doc = BsonDocument::FromJson(bad);
    EXPECT_FALSE(doc.ok()) << bad;
    if (!doc.ok()) EXPECT_NE(doc.status().message().find("invalid Extended JSON document"), std::string::npos);
  }
  std::string deep = std::string(600, '[');
  deep = "{\"a\": " + deep + std::string(600, ']') + "}";
  auto doc = BsonDocument::FromJson(deep);
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("nested deeper than"), std::string::npos) << doc.status().message();
}

// MongoDB keeps documents 100 levels deep (the document and 99 levels below it); their canonical
// JSON, with a number at every level, is deeper than libbson's reader takes (100 JSON levels).
TEST(ExtendedJsonTest, HundredLevelDocumentsRoundTripThroughAnEvent) {
  std::vector<bson_t> stack(100);
  bson_init(&stack[0]);
  bson_append_utf8(&stack[0], "_id", 3, "chain-100", -1);
  for (int i = 1; i < 100; ++i) {
    bson_append_int32(&stack[i - 1], "depth", -1, i);
    bson_append_document_begin(&stack[i - 1], "n", 1, &stack[i]);
  }
  bson_append_int64(&stack[99], "leaf", -1, 100);
  for (int i = 99; i >= 1; --i) bson_append_document_end(&stack[i - 1], &stack[i]);
  BsonDocument doc(&stack[0]);
  bson_destroy(&stack[0]);
  ChangeEvent e;
  e.kind = EventKind::kInsert;
  e.db = "d";
  e.collection = "deep";
  e.after = doc;
  bson_append_utf8(e.document_key.mutable_get(), "_id", 3, "chain-100", -1);
  auto decoded = DecodeEvent(EncodeKey(e), EncodeValue(e));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(decoded->has_value());
  ASSERT_TRUE((*decoded)->after);
  EXPECT_TRUE(*(*decoded)->after == doc);
}

}  // namespace
}  // namespace m2m
