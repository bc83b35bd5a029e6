#include "compare.h"

#include <gtest/gtest.h>

#include "key_candidates.h"
#include "m2m/bson_document.h"

namespace m2m::verify {
namespace {

// The SqlValue the mapping makes of `json`'s field "v".
SqlValue Value(const std::string& json) {
  auto doc = BsonDocument::FromJson(json);
  EXPECT_TRUE(doc.ok()) << json;
  bson_iter_t it;
  EXPECT_TRUE(bson_iter_init_find(&it, doc->get(), "v"));
  return ValueFromBson(&it);
}

TEST(SameValueTest, ComparesInTheFormMysqlReturns) {
  EXPECT_TRUE(SameValue(Value(R"({"v": 5})"), SqlType::kInt, "5"));
  EXPECT_FALSE(SameValue(Value(R"({"v": 5})"), SqlType::kInt, "6"));
  EXPECT_TRUE(SameValue(Value(R"({"v": {"$numberDecimal": "12.5"}})"), SqlType::kDecimal,
                        "12.500000000000000000000000000000"));
  EXPECT_TRUE(SameValue(Value(R"({"v": {"$date": "2024-03-01T10:20:30.123Z"}})"), SqlType::kDateTime,
                        "2024-03-01 10:20:30.123"));
  EXPECT_TRUE(SameValue(Value(R"({"v": true})"), SqlType::kBool, "1"));
  EXPECT_TRUE(SameValue(SqlValue{}, SqlType::kVarchar, std::nullopt));
  EXPECT_FALSE(SameValue(SqlValue{}, SqlType::kVarchar, ""));
  EXPECT_FALSE(SameValue(Value(R"({"v": ""})"), SqlType::kVarchar, std::nullopt));
}

TEST(SameValueTest, JsonComparesParsedAndDoublesAsNumbers) {
  // MySQL 8 stores JSON normalised: keys sorted, a space after each separator.
  EXPECT_TRUE(SameValue(Value(R"({"v": {"b": 1, "a": [1, 2]}})"), SqlType::kJson, R"({"a": [1, 2], "b": 1})"));
  EXPECT_FALSE(SameValue(Value(R"({"v": {"b": 1}})"), SqlType::kJson, R"({"b": 2})"));
  EXPECT_TRUE(SameValue(Value(R"({"v": 1e20})"), SqlType::kDouble, "1e+20"));
  EXPECT_TRUE(SameValue(Value(R"({"v": 0.1})"), SqlType::kDouble, "0.1"));
  EXPECT_FALSE(SameValue(Value(R"({"v": 0.1})"), SqlType::kDouble, "0.10000001"));
}

TEST(SameValueTest, TextColumnMayHoldTheDecimalFormItWasConvertedFrom) {
  EXPECT_TRUE(SameValue(Value(R"({"v": 7})"), SqlType::kVarchar, "7"));
  EXPECT_TRUE(SameValue(Value(R"({"v": 7})"), SqlType::kVarchar, "7.000000000000000000000000000000"));
  EXPECT_FALSE(SameValue(Value(R"({"v": "7"})"), SqlType::kVarchar, "7.000000000000000000000000000000"));
}

Catalog Schema() {
  Catalog c;
  TableSchema root{"orders", R"(["orders"])",
                   {{"_id", SqlType::kBigInt, "", R"(["_id"])"}, {"total", SqlType::kDouble, "", R"(["total"])"},
                    {"city", SqlType::kVarchar, "", R"(["city"])"}},
                   {"_id"}, true};
  TableSchema items{"orders_items", R"(["orders",["items"]])",
                    {{"_id", SqlType::kBigInt, "", R"(#key ["_id"])"}, {"_idx1", SqlType::kInt, "", "#idx1"},
                     {"sku", SqlType::kVarchar, "", R"(["sku"])"}},
                    {"_id", "_idx1"}, true};
  c.Add(root);
  c.Add(items);
  return c;
}

TEST(CompareRowsTest, NamesEachDifferingColumnAndChildRow) {
  const Catalog schema = Schema();
  KeyRows<Row> expected;
  expected["orders"][""] = {{"_id", Value(R"({"v": 7})")}, {"total", Value(R"({"v": 12.5})")}};
  expected["orders_items"]["_idx1=0"] = {{"_id", Value(R"({"v": 7})")}, {"_idx1", Value(R"({"v": 0})")},
                                         {"sku", Value(R"({"v": "a"})")}};
  expected["orders_items"]["_idx1=1"] = {{"_id", Value(R"({"v": 7})")}, {"_idx1", Value(R"({"v": 1})")},
                                         {"sku", Value(R"({"v": "b"})")}};
  KeyRows<StoredRow> stored;
  stored["orders"][""] = {{"_id", "7"}, {"total", "13"}, {"city", "Oslo"}};
  stored["orders_items"]["_idx1=0"] = {{"_id", "7"}, {"_idx1", "0"}, {"sku", "x"}};
  stored["orders_items"]["_idx1=2"] = {{"_id", "7"}, {"_idx1", "2"}, {"sku", "c"}};
  EXPECT_EQ(CompareRows(expected, stored, schema, "orders"),
            (std::vector<std::string>{"total: MongoDB 12.5, MySQL 13", "city: MongoDB NULL, MySQL Oslo",
                                      "orders_items (_idx1=0) sku: MongoDB a, MySQL x",
                                      "orders_items (_idx1=1): missing", "orders_items (_idx1=2): extra row"}));
  stored["orders"][""] = {{"_id", "7"}, {"total", "12.5"}, {"city", std::nullopt}};
  stored["orders_items"].erase("_idx1=2");
  stored["orders_items"]["_idx1=0"][2].second = "a";
  stored["orders_items"]["_idx1=1"] = {{"_id", "7"}, {"_idx1", "1"}, {"sku", "b"}};
  EXPECT_TRUE(CompareRows(expected, stored, schema, "orders").empty());
}

TEST(CompareRowsTest, AColumnMySqlDoesNotHaveIsADifference) {
  KeyRows<Row> expected;
  expected["orders"][""] = {{"_id", Value(R"({"v": 7})")}, {"note", Value(R"({"v": "hi"})")}};
  KeyRows<StoredRow> stored;
  stored["orders"][""] = {{"_id", "7"}, {"total", std::nullopt}, {"city", std::nullopt}};
  EXPECT_EQ(CompareRows(expected, stored, Schema(), "orders"),
            (std::vector<std::string>{"note: MongoDB hi, MySQL has no such column"}));
}

TEST(RowKeyTest, LeavesOutTheCopiedRootKey) {
  const Catalog schema = Schema();
  auto text = [](const std::string& c) -> std::optional<std::string> { return c == "_id" ? "7" : "3"; };
  EXPECT_EQ(RowKey(*schema.Find("orders_items"), text, 1), "_idx1=3");
  EXPECT_EQ(RowKey(*schema.Find("orders_items"), text, 0), "_id=7 _idx1=3");
}

// Each candidate's key text must be the text the row holds, for every type a key can have.
TEST(KeyCandidatesTest, EveryKeyTypeReadsBack) {
  for (const char* json : {R"({"v": 42})", R"({"v": {"$numberLong": "-9000000000"}})",
                           R"({"v": {"$oid": "65a1b2c3d4e5f60718293a4b"}})", R"({"v": "abc"})", R"({"v": "42"})",
                           R"({"v": 2.5})", R"({"v": {"$date": "2024-03-01T10:20:30.123Z"}})", R"({"v": true})",
                           R"({"v": {"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}})",
                           R"({"v": {"a": 1, "b": "x"}})",
                           R"({"v": {"$binary": {"base64": "AQI=", "subType": "00"}}})", R"({"v": null})",
                           R"({"v": "null"})", R"({"v": "{x"})", R"({"v": {"$numberDouble": "NaN"}})",
                           R"({"v": {"$regularExpression": {"pattern": "^a", "options": "i"}}})",
                           R"({"v": {"$minKey": 1}})", R"({"v": {"$timestamp": {"t": 1, "i": 2}}})"}) {
    auto doc = BsonDocument::FromJson(json);
    ASSERT_TRUE(doc.ok()) << json;
    bson_iter_t it;
    ASSERT_TRUE(bson_iter_init_find(&it, doc->get(), "v"));
    auto key = KeyValueFromBson(&it);
    ASSERT_TRUE(key.ok()) << json;
    const std::string text = StoredText(*key, key->type);
    bool found = false;
    for (const BsonDocument& candidate : KeyCandidates(text, key->type)) {
      bson_iter_t c;
      ASSERT_TRUE(bson_iter_init_find(&c, candidate.get(), "v"));
      auto back = KeyValueFromBson(&c);
      found |= back.ok() && StoredText(*back, key->type) == text;
    }
    EXPECT_TRUE(found) << json << " as " << text;
  }
}

}  // namespace
}  // namespace m2m::verify
