#include "m2m/mapping.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "m2m/identifiers.h"
#include "mapping_test_util.h"

namespace m2m {
namespace {

TEST(IdentifiersTest, QuotesAndEscapes) {
  EXPECT_EQ(QuoteIdentifier("a`b"), "`a``b`");
  EXPECT_EQ(QuoteString(std::string("a'b\"c\\d\ne\rf\x1ag\0h", 15)), "'a\\'b\\\"c\\\\d\\ne\\rf\\Zg\\0h'");
  EXPECT_EQ(QuoteString("caf\xC3\xA9"), "'caf\xC3\xA9'");
  EXPECT_EQ(HexLiteral(std::string("\x00\xff", 2)), "X'00FF'");
}

TEST(IdentifiersTest, SanitizesDeterministically) {
  auto none = [](std::string_view) { return false; };
  EXPECT_EQ(MakeIdentifier("", {"address", "city"}, "_", "s", none), "address_city");
  // Lossy names always carry the hash of their source, so they cannot steal a clean name.
  std::string dotted = MakeIdentifier("", {"a.b"}, "_", "[\"a.b\"]", none);
  EXPECT_EQ(dotted, "a_b_" + Fnv1a32Hex("[\"a.b\"]"));
  EXPECT_EQ(MakeIdentifier("", {"pr\xC3\xA9nom"}, "_", "x", none).substr(0, 7), "pr_nom_");
  EXPECT_EQ(MakeIdentifier("", {""}, "_", "x", none), "_" + Fnv1a32Hex("x"));
  std::string long_name = MakeIdentifier("", {std::string(100, 'a')}, "_", "x", none);
  EXPECT_EQ(long_name.size(), 64u);
  auto taken = [](std::string_view n) { return AsciiLower(n) == "name"; };
  EXPECT_EQ(MakeIdentifier("", {"Name"}, "_", "y", taken), "Name_" + Fnv1a32Hex("y"));
}

TEST(SqlTypesTest, FixedDecimal) {
  EXPECT_EQ(FixedDecimal("1.5E+3"), "1500");
  EXPECT_EQ(FixedDecimal("1e-07"), "0.0000001");
  EXPECT_EQ(FixedDecimal("-12.340"), "-12.34");
  EXPECT_EQ(FixedDecimal("0E-6176"), "0");
  EXPECT_EQ(FixedDecimal("1E+35"), std::nullopt);
  EXPECT_EQ(FixedDecimal("1E-31"), std::nullopt);
  EXPECT_EQ(FixedDecimal("NaN"), std::nullopt);
}

TEST(SqlTypesTest, EveryBsonTypeHasATypeAndText) {
  auto doc = BsonDocument::FromJson(R"J({
    "oid": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "s": "x", "i": 1, "l": {"$numberLong": "9007199254740993"},
    "d": 1.5, "nan": {"$numberDouble": "NaN"}, "inf": {"$numberDouble": "-Infinity"},
    "dec": {"$numberDecimal": "12.50"}, "bigdec": {"$numberDecimal": "1E+40"}, "b": true,
    "date": {"$date": "2024-01-02T03:04:05.678Z"}, "old": {"$date": {"$numberLong": "-62135596800000"}},
    "ts": {"$timestamp": {"t": 1, "i": 2}}, "bin": {"$binary": {"base64": "AAE=", "subType": "00"}},
    "uuid": {"$binary": {"base64": "ASNFZ4mrze8BI0VniavN7w==", "subType": "04"}}, "n": null,
    "re": {"$regularExpression": {"pattern": "^a", "options": "i"}}, "js": {"$code": "f()"},
    "min": {"$minKey": 1}, "max": {"$maxKey": 1}, "arr": [1, "a"], "doc": {"x": 1}})J");
  ASSERT_TRUE(doc.ok());
  std::map<std::string, SqlValue> v;
  bson_iter_t it;
  bson_iter_init(&it, doc->get());
  while (bson_iter_next(&it)) v[bson_iter_key(&it)] = ValueFromBson(&it);
  EXPECT_EQ(v["oid"].type, SqlType::kObjectId);
  EXPECT_EQ(v["oid"].text, "65a1b2c3d4e5f60718293a4b");
  EXPECT_EQ(v["s"].type, SqlType::kVarchar);
  EXPECT_EQ(v["i"].type, SqlType::kInt);
  EXPECT_EQ(v["l"].type, SqlType::kBigInt);
  EXPECT_FALSE(v["l"].exact_in_double);
  EXPECT_EQ(v["d"].type, SqlType::kDouble);
  EXPECT_EQ(v["nan"].type, SqlType::kVarchar);
  EXPECT_EQ(v["nan"].text, "NaN");
  EXPECT_EQ(v["inf"].text, "-Infinity");
  EXPECT_EQ(v["dec"].type, SqlType::kDecimal);
  EXPECT_EQ(*v["dec"].decimal, "12.5");
  EXPECT_EQ(v["bigdec"].type, SqlType::kVarchar);
  EXPECT_EQ(v["bigdec"].text, "1E+40");
  EXPECT_EQ(v["b"].type, SqlType::kBool);
  EXPECT_EQ(v["b"].text, "1");
  EXPECT_EQ(v["date"].type, SqlType::kDateTime);
  EXPECT_EQ(v["date"].text, "2024-01-02 03:04:05.678");
  EXPECT_EQ(v["old"].type, SqlType::kVarchar);
  EXPECT_EQ(v["old"].text, "0001-01-01 00:00:00.000");
  EXPECT_EQ(v["ts"].text, R"({"$timestamp":{"t":1,"i":2}})");
  EXPECT_EQ(v["bin"].type, SqlType::kBlob);
  EXPECT_EQ(v["bin"].bytes, std::string("\x00\x01", 2));
  EXPECT_EQ(SqlLiteral(v["bin"], SqlType::kBlob), "X'0001'");
  EXPECT_EQ(v["uuid"].type, SqlType::kUuid);
  EXPECT_EQ(v["uuid"].text, "01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_TRUE(v["n"].is_null());
  EXPECT_EQ(v["re"].text, R"({"$regularExpression":{"pattern":"^a","options":"i"}})");
  EXPECT_EQ(v["js"].text, R"J({"$code":"f()"})J");
  EXPECT_EQ(v["min"].text, R"({"$minKey":1})");
  EXPECT_EQ(v["arr"].type, SqlType::kJson);
  EXPECT_EQ(v["arr"].text, R"([1,"a"])");
  EXPECT_EQ(v["doc"].text, R"({"x":1})");
  EXPECT_EQ(SqlLiteral(v["dec"], SqlType::kDecimal), "12.5");
  EXPECT_EQ(SqlLiteral(v["s"], SqlType::kVarchar), "'x'");
}

TEST(SqlTypesTest, OnlyNumbersAreWrittenUnquotedWhateverTheColumnType) {
  SqlValue hostile;
  hostile.type = SqlType::kKeyText;
  hostile.text = "1 OR 1=1";
  for (SqlType t : {SqlType::kBool, SqlType::kInt, SqlType::kBigInt, SqlType::kDouble}) {
    EXPECT_EQ(SqlLiteral(hostile, t), "'1 OR 1=1'");
  }
  SqlValue number;
  number.type = SqlType::kBigInt;
  number.text = "-42";
  EXPECT_EQ(SqlLiteral(number, SqlType::kBigInt), "-42");
  number.text = "1.5e-7";
  EXPECT_EQ(SqlLiteral(number, SqlType::kDouble), "1.5e-7");
}

// The hand-written scan that decides what goes into SQL unquoted accepts exactly what the pattern it
// replaced did: strings made of the characters that matter, at random.
TEST(SqlTypesTest, NumbersAreRecognisedExactlyAsThePatternDid) {
  const std::regex pattern(R"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
  const std::string alphabet = "0123456789-+.eE x";
  std::mt19937 rng(12);
  SqlValue v;
  v.type = SqlType::kKeyText;
  for (int n = 0; n < 200000; ++n) {
    v.text.clear();
    for (size_t len = rng() % 9; len > 0; --len) v.text += alphabet[rng() % alphabet.size()];
    const std::string expected = std::regex_match(v.text, pattern) ? v.text : "'" + v.text + "'";
    ASSERT_EQ(SqlLiteral(v, SqlType::kDouble), expected) << v.text;
  }
}

// The scalar types' relaxed JSON, written directly, is the text libbson and nlohmann made of it.
TEST(SqlTypesTest, ScalarRelaxedJsonIsWhatLibbsonAndNlohmannWrite) {
  bson_t doc = BSON_INITIALIZER;
  for (int32_t i : {0, 1, -1, INT32_MAX, INT32_MIN}) BSON_APPEND_INT32(&doc, "v", i);
  for (int64_t i : {int64_t{0}, int64_t{-7}, INT64_MAX, INT64_MIN, int64_t{1} << 53}) BSON_APPEND_INT64(&doc, "v", i);
  BSON_APPEND_BOOL(&doc, "v", true);
  BSON_APPEND_BOOL(&doc, "v", false);
  BSON_APPEND_NULL(&doc, "v");
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "5f1d7a9e2b3c4d5e6f708192");
  BSON_APPEND_OID(&doc, "v", &oid);
  for (std::string s : {std::string(""), std::string("plain"), std::string("q\"uote\\ back/slash"),
                        std::string("tab\t nl\n cr\r bell\x07 del\x7f"), std::string("caf\xc3\xa9 \xf0\x9f\x98\x80"),
                        std::string("nul\0inside", 10), std::string("bad \xff utf8"), std::string("\xed\xa0\x80")}) {
    bson_append_utf8(&doc, "v", 1, s.data(), static_cast<int>(s.size()));
  }
  bson_iter_t it;
  ASSERT_TRUE(bson_iter_init(&it, &doc));
  int checked = 0;
  while (bson_iter_next(&it)) {
    bson_t wrapper = BSON_INITIALIZER;
    bson_append_iter(&wrapper, "v", 1, &it);
    char* json = bson_as_relaxed_extended_json(&wrapper, nullptr);
    std::string expected = json ? nlohmann::ordered_json::parse(json, nullptr, false)["v"].dump(
                                      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                                : "";
    bson_free(json);
    bson_destroy(&wrapper);
    EXPECT_EQ(RelaxedJson(&it), expected) << "value " << checked;
    ++checked;
  }
  EXPECT_EQ(checked, 22);
  bson_destroy(&doc);
}

TEST(SqlTypesTest, WideningLadder) {
  auto val = [](SqlType t, std::string text = "1") {
    SqlValue v;
    v.type = t;
    v.text = text;
    v.decimal = text;
    return v;
  };
  EXPECT_EQ(Widen(SqlType::kBool, val(SqlType::kInt), true), SqlType::kInt);
  EXPECT_EQ(Widen(SqlType::kInt, val(SqlType::kBigInt), true), SqlType::kBigInt);
  EXPECT_EQ(Widen(SqlType::kInt, val(SqlType::kDouble), true), SqlType::kDouble);
  EXPECT_EQ(Widen(SqlType::kBigInt, val(SqlType::kDouble, "1.5"), true), SqlType::kDecimal);
  EXPECT_EQ(Widen(SqlType::kBigInt, val(SqlType::kDecimal), true), SqlType::kDecimal);
  SqlValue huge = val(SqlType::kDouble, "1e+300");
  huge.decimal.reset();
  EXPECT_EQ(Widen(SqlType::kBigInt, huge, true), SqlType::kVarchar);
  SqlValue big = val(SqlType::kBigInt, "9007199254740993");
  big.exact_in_double = false;
  EXPECT_EQ(Widen(SqlType::kDouble, big, true), SqlType::kVarchar);
  EXPECT_EQ(Widen(SqlType::kDateTime, val(SqlType::kVarchar, "x"), true), SqlType::kVarchar);
  EXPECT_EQ(Widen(SqlType::kVarchar, val(SqlType::kText, std::string(300, 'x')), true), SqlType::kText);
  EXPECT_EQ(Widen(SqlType::kText, val(SqlType::kVarchar), true), SqlType::kText);
  EXPECT_EQ(Widen(SqlType::kJson, val(SqlType::kInt), true), SqlType::kLongText);
  EXPECT_EQ(Widen(SqlType::kBlob, val(SqlType::kVarchar, "x"), true), SqlType::kBlob);
  EXPECT_EQ(Widen(SqlType::kInt, val(SqlType::kVarchar, "x"), false), SqlType::kText);
  EXPECT_EQ(WidenKey(SqlType::kBigInt, val(SqlType::kObjectId)), SqlType::kKeyText);
}

// The key text of {"v": <value>}.
std::string KeyTextOfJson(const std::string& value) {
  auto doc = BsonDocument::FromJson("{\"v\": " + value + "}");
  EXPECT_TRUE(doc.ok()) << value;
  bson_iter_t it;
  EXPECT_TRUE(bson_iter_init_find(&it, doc->get(), "v"));
  auto key = KeyValueFromBson(&it);
  EXPECT_TRUE(key.ok()) << value;
  return key.ok() ? key->text : "";
}

TEST(SqlTypesTest, KeysOfDifferentTypesNeverShareATextAndEqualNumbersDo) {
  EXPECT_EQ(KeyTextOfJson("1"), "1");
  EXPECT_EQ(KeyTextOfJson(R"({"$numberLong": "1"})"), "1");
  EXPECT_EQ(KeyTextOfJson("1.0"), "1");
  EXPECT_EQ(KeyTextOfJson(R"({"$numberDecimal": "1.000"})"), "1");
  EXPECT_EQ(KeyTextOfJson(R"({"$numberDouble": "-0.0"})"), "0");
  EXPECT_EQ(KeyTextOfJson(R"("1")"), R"("1")");
  EXPECT_EQ(KeyTextOfJson(R"("-12")"), R"("-12")");
  EXPECT_EQ(KeyTextOfJson("1.5"), R"({"$numberDouble":"1.5"})");
  EXPECT_EQ(KeyTextOfJson(R"("1.5")"), "1.5");
  EXPECT_EQ(KeyTextOfJson(R"({"$numberDouble": "NaN"})"), R"({"$numberDouble":"NaN"})");
  EXPECT_EQ(KeyTextOfJson(R"("NaN")"), "NaN");
  EXPECT_EQ(KeyTextOfJson(R"({"$oid": "65a1b2c3d4e5f60718293a4b"})"), "65a1b2c3d4e5f60718293a4b");
  EXPECT_EQ(KeyTextOfJson(R"("65a1b2c3d4e5f60718293a4b")"), R"("65a1b2c3d4e5f60718293a4b")");
  EXPECT_EQ(KeyTextOfJson("null"), "null");
  EXPECT_EQ(KeyTextOfJson(R"("null")"), R"("null")");
  EXPECT_EQ(KeyTextOfJson("true"), "true");
  EXPECT_EQ(KeyTextOfJson(R"("{\"a\":1}")"), R"("{\"a\":1}")");
  EXPECT_EQ(KeyTextOfJson(R"({"a": 1})"), R"({"a":{"$numberInt":"1"}})");
  EXPECT_EQ(KeyTextOfJson(R"({"a": {"$m2mDocument": {"$numberLong": "5"}}})"),
            R"({"a":{"$m2mDocument":{"$numberLong":"5"}}})");  // the string "5" under a field named $numberLong
  EXPECT_EQ(KeyTextOfJson(R"("a ")"), "a ");
  EXPECT_EQ(KeyTextOfJson(R"("")"), "");
  EXPECT_EQ(KeyTextOfJson(R"({"$date": {"$numberLong": "0"}})"), R"({"$date":{"$numberLong":"0"}})");
}

TEST(SqlTypesTest, LongKeysAreCutAndHashedWithinTheColumn) {
  const std::string a = KeyTextOfJson("\"" + std::string(1500, 'a') + "\"");
  const std::string b = KeyTextOfJson("\"" + std::string(1499, 'a') + "b\"");
  EXPECT_EQ(a.size(), 1024u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 959), std::string(959, 'a'));
  EXPECT_EQ(a[959], kHashedKeyMark);
  EXPECT_EQ(KeyTextOfJson("\"" + std::string(1024, 'k') + "\""), std::string(1024, 'k'));  // fits: kept whole
  // Cut at a character boundary: 4-byte characters.
  std::string emoji;
  for (int i = 0; i < 300; ++i) emoji += "\xF0\x9F\x98\x80";
  const std::string e = KeyTextOfJson("\"" + emoji + "\"");
  EXPECT_EQ(e.find(kHashedKeyMark), 956u);
  SqlValue v;
  v.type = SqlType::kKeyText;
  v.text = a;
  EXPECT_EQ(SqlLiteral(v, SqlType::kKeyText).substr(0, 2), "X'");
}

TEST_F(MappingTest, IdsOfOneTextButDifferentTypesAreDifferentRows) {
  // Mapped one per batch and in one batch: the key column widens from BIGINT on the second event.
  for (bool one_batch : {false, true}) {
    SCOPED_TRACE(one_batch);
    catalog_ = Catalog();
    std::vector<ChangeEvent> events = {Insert(R"({"_id": 1, "items": [{"q": 1}]})"),
                                       Insert(R"({"_id": "1", "items": [{"q": 2}]})"),
                                       Insert(R"({"_id": null, "x": 3})"), Insert(R"({"_id": 1.0, "x": 4})")};
    std::vector<std::string> sql;
    if (one_batch) {
      sql = Sql(events);
    } else {
      for (const ChangeEvent& e : events) {
        for (std::string& s : Sql({e})) sql.push_back(std::move(s));
      }
    }
    EXPECT_EQ(TypeOf("orders", "_id"), SqlType::kKeyText);
    EXPECT_EQ(TypeOf("orders_items", "_id"), SqlType::kKeyText);
    std::string all;
    for (const std::string& s : sql) all += s + "\n";
    EXPECT_NE(all.find("'\\\"1\\\"'"), std::string::npos) << all;  // the string "1"
    EXPECT_NE(all.find("('null',3)"), std::string::npos) << all;
    // 1.0 is the _id 1: the same row, whose children it replaces.
    EXPECT_NE(all.find("('1',4)"), std::string::npos) << all;
  }
}

TEST_F(MappingTest, LongIdsKeepTheirWholeTextInAFullKeyColumn) {
  const std::string id(1500, 'u');
  auto sql = Sql({Insert(R"({"_id": ")" + id + R"(", "items": [{"q": 1}]})"), Insert(R"({"_id": "short"})")});
  const ColumnSchema* full = Column("orders", "_id_full");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->type, SqlType::kText);
  EXPECT_EQ(full->Comment(), "#full [\"_id\"]");
  EXPECT_EQ(Column("orders_items", "_id_full"), nullptr);  // children key on the cut text alone
  std::string all;
  for (const std::string& s : sql) all += s + "\n";
  EXPECT_NE(all.find("'" + id + "'"), std::string::npos);
  EXPECT_NE(all.find("('short',NULL)"), std::string::npos) << all;
  Restart();  // the full-key column is found again by its comment
  Sql({Insert(R"({"_id": ")" + id + R"(", "x": 1})")});
  EXPECT_EQ(catalog_.Find("orders")->columns.size(), 3u);
}

TEST_F(MappingTest, FlattensNestedDocumentsAndUpserts) {
  auto sql = Sql({Insert(R"({"_id": 1, "name": "a", "address": {"city": "Paris", "geo": {"lat": 1.5}}})")});
  ASSERT_EQ(sql.size(), 2u);
  EXPECT_EQ(sql[0],
            "CREATE TABLE IF NOT EXISTS `orders` (`_id` BIGINT NOT NULL COMMENT '[\\\"_id\\\"]', "
            "`name` VARCHAR(255) NULL COMMENT '[\\\"name\\\"]', "
            "`address_city` VARCHAR(255) NULL COMMENT '[\\\"address\\\",\\\"city\\\"]', "
            "`address_geo_lat` DOUBLE NULL COMMENT '[\\\"address\\\",\\\"geo\\\",\\\"lat\\\"]', "
            "PRIMARY KEY (`_id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin "
            "COMMENT='[\\\"orders\\\"]'");
  EXPECT_EQ(sql[1],
            "INSERT INTO `orders` (`_id`,`name`,`address_city`,`address_geo_lat`) VALUES (1,'a','Paris',1.5) "
            "ON DUPLICATE KEY UPDATE `name`=VALUES(`name`),`address_city`=VALUES(`address_city`),"
            "`address_geo_lat`=VALUES(`address_geo_lat`)");
}

// An empty array cannot know whether its path's other documents fill a child table or a JSON column,
// and across Kafka partitions which document comes first is the host's scheduling. So an empty array
// is always `[]` in the path's JSON column, beside the child table: both orders give the same tables.
TEST_F(MappingTest, AnEmptyArrayIsJsonBracketsWhicheverDocumentCameFirst) {
  auto first = Sql({Insert(R"({"_id": 1, "items": []})")});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1], "INSERT INTO `orders` (`_id`,`items`) VALUES (1,'[]') "
                      "ON DUPLICATE KEY UPDATE `items`=VALUES(`items`)");
  auto later = Sql({Insert(R"({"_id": 2, "items": [{"sku": "a"}]})"), Insert(R"({"_id": 3, "items": []})"),
                    Insert(R"({"_id": 1, "items": []})")});
  std::string all;
  for (const std::string& s : later) all += s + "\n";
  EXPECT_NE(all.find("(2,NULL)"), std::string::npos) << all;
  EXPECT_NE(all.find("(3,'[]')"), std::string::npos) << all;
  EXPECT_NE(all.find("(1,'[]')"), std::string::npos) << all;
  EXPECT_NE(all.find("DELETE FROM `orders_items`"), std::string::npos) << all;  // old child rows of 1 and 3 go

  catalog_ = Catalog();
  auto child_first = Sql({Insert(R"({"_id": 2, "items": [{"sku": "a"}]})"), Insert(R"({"_id": 3, "items": []})")});
  ASSERT_NE(Column("orders", "items"), nullptr);  // made by the empty array, though the child table came first
  EXPECT_EQ(TypeOf("orders", "items"), SqlType::kJson);
  all.clear();
  for (const std::string& s : child_first) all += s + "\n";
  EXPECT_NE(all.find("(3,'[]')"), std::string::npos) << all;

  Use("scalar_arrays: table\n");
  catalog_ = Catalog();
  Sql({Insert(R"({"_id": 3, "items": []})"), Insert(R"({"_id": 2, "items": [{"sku": "a"}]})")});
  EXPECT_EQ(Column("orders", "items"), nullptr);  // arrays are never JSON columns in table mode
}

TEST_F(MappingTest, DepthLimitKeepsDeeperPartsAsJson) {
  Use("flatten_depth: 1");
  Sql({Insert(R"({"_id": 1, "a": {"b": {"c": 1}, "d": 2}})")});
  EXPECT_EQ(TypeOf("orders", "a_b"), SqlType::kJson);
  EXPECT_EQ(TypeOf("orders", "a_d"), SqlType::kInt);
  EXPECT_EQ(Column("orders", "a_b")->Comment(), "json [\"a\",\"b\"]");
}

TEST_F(MappingTest, HostileNamesAreQuotedUniqueAndCannotInject) {
  auto sql = Sql({Insert(R"({"_id": "x'); DROP TABLE t; --", "a_b": 1, "a": {"b": 2}, "a.b": 3, "A_B": 4,
                              "we`ird": 5, "": 6, "$x": 7, "name": "O'Br\\\\ien\u0000"})")});
  const TableSchema* t = catalog_.Find("orders");
  ASSERT_NE(t, nullptr);
  std::set<std::string> lower;
  for (const ColumnSchema& c : t->columns) {
    EXPECT_LE(c.name.size(), 64u);
    EXPECT_EQ(c.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"),
              std::string::npos) << c.name;
    EXPECT_TRUE(lower.insert(AsciiLower(c.name)).second) << c.name;
  }
  EXPECT_EQ(t->columns.size(), 9u);
  EXPECT_EQ(t->FindSource("[\"a_b\"]")->name, "a_b");  // first come keeps the clean name
  EXPECT_NE(t->FindSource("[\"a\",\"b\"]")->name, "a_b");
  EXPECT_NE(sql.back().find("'x\\'); DROP TABLE t; --'"), std::string::npos);
  EXPECT_NE(sql.back().find("'O\\'Br\\\\\\\\ien\\0'"), std::string::npos) << sql.back();
}

TEST_F(MappingTest, ArraysOfDocumentsBecomeChildTablesReplacedPerParent) {
  auto sql = Sql({Insert(R"({"_id": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "parts": [{"p": 1}]}],
                              "tags": ["x", "y"]})")});
  EXPECT_EQ(TypeOf("orders", "tags"), SqlType::kJson);
  const TableSchema* items = catalog_.Find("orders_items");
  ASSERT_NE(items, nullptr);
  EXPECT_EQ(items->primary_key, (std::vector<std::string>{"_id", "_idx1"}));
  const TableSchema* parts = catalog_.Find("orders_items_parts");
  ASSERT_NE(parts, nullptr);
  EXPECT_EQ(parts->primary_key, (std::vector<std::string>{"_id", "_idx1", "_idx2"}));
  std::vector<std::string> dml(sql.begin() + 3, sql.end());
  EXPECT_EQ(dml[0], "DELETE FROM `orders_items_parts` WHERE `_id` IN (1)");
  EXPECT_EQ(dml[1], "DELETE FROM `orders_items` WHERE `_id` IN (1)");
  EXPECT_EQ(dml[3], "INSERT INTO `orders_items` (`_id`,`_idx1`,`sku`,`qty`) VALUES (1,0,'a',1),(1,1,'b',NULL)");
  EXPECT_EQ(dml[4], "INSERT INTO `orders_items_parts` (`_id`,`_idx1`,`_idx2`,`p`) VALUES (1,1,0,1)");
}

TEST_F(MappingTest, ScalarArraysCanBeChildTables) {
  Use("scalar_arrays: table");
  Sql({Insert(R"({"_id": 1, "tags": ["x", 2]})")});
  const TableSchema* t = catalog_.Find("orders_tags");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->FindColumn("_value")->type, SqlType::kVarchar);
}

TEST_F(MappingTest, TypeFlipsWidenColumnsWithDdl) {
  Sql({Insert(R"({"_id": 1, "n": 1, "d": {"$date": "2024-01-01T00:00:00Z"}})")});
  auto sql = Sql({Insert(R"({"_id": 2, "n": {"$numberLong": "5000000000"}, "d": "soon", "x": true})")});
  EXPECT_EQ(sql[0], "ALTER TABLE `orders` MODIFY COLUMN `n` BIGINT NULL COMMENT '[\\\"n\\\"]'");
  EXPECT_EQ(sql[1], "ALTER TABLE `orders` MODIFY COLUMN `d` VARCHAR(255) NULL COMMENT '[\\\"d\\\"]'");
  EXPECT_EQ(sql[2], "ALTER TABLE `orders` ADD COLUMN `x` TINYINT(1) NULL COMMENT '[\\\"x\\\"]', ALGORITHM=INSTANT");
  options_.instant_add_column = false;
  sql = Sql({Insert(R"({"_id": 3, "y": 1})")});
  EXPECT_EQ(sql[0], "ALTER TABLE `orders` ADD COLUMN `y` INT NULL COMMENT '[\\\"y\\\"]'");
}

TEST_F(MappingTest, OutOfRangeValuesBecomeText) {
  Sql({Insert(R"({"_id": 1, "v": 1.5, "when": {"$date": "2024-01-01T00:00:00Z"}})")});
  Sql({Insert(R"({"_id": 2, "v": {"$numberDouble": "Infinity"}, "when": {"$date": {"$numberLong": "253402300800000"}}})")});
  EXPECT_EQ(TypeOf("orders", "v"), SqlType::kVarchar);
  EXPECT_EQ(TypeOf("orders", "when"), SqlType::kVarchar);
}

TEST_F(MappingTest, DeletesChildrenBeforeParents) {
  Sql({Insert(R"({"_id": 1, "items": [{"a": 1}]})")});
  auto sql = Sql({Keyed(EventKind::kDelete, R"({"_id": 1})")});
  ASSERT_EQ(sql.size(), 2u);
  EXPECT_EQ(sql[0], "DELETE FROM `orders_items` WHERE `_id` IN (1)");
  EXPECT_EQ(sql[1], "DELETE FROM `orders` WHERE `_id` IN (1)");
}

TEST_F(MappingTest, DeleteOfUnknownCollectionDoesNothing) {
  EXPECT_TRUE(Sql({Keyed(EventKind::kDelete, R"({"_id": 1})", "never")}).empty());
}

TEST_F(MappingTest, CoalescesLatestStatePerKey) {
  ChangeEvent upd = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  upd.update = UpdateDescription{*BsonDocument::FromJson(R"({"n": 9})"), {"s"}, {}};
  auto sql = Sql({Insert(R"({"_id": 1, "n": 1, "s": "a"})"), Insert(R"({"_id": 2, "n": 2})"), upd,
                  Keyed(EventKind::kDelete, R"({"_id": 2})")});
  ASSERT_EQ(sql.size(), 3u);
  EXPECT_EQ(sql[1], "DELETE FROM `orders` WHERE `_id` IN (2)");
  EXPECT_EQ(sql[2], "INSERT INTO `orders` (`_id`,`n`,`s`) VALUES (1,9,NULL) ON DUPLICATE KEY UPDATE "
                    "`n`=VALUES(`n`),`s`=VALUES(`s`)");
}

TEST_F(MappingTest, SplitsStatementsAtTheSizeLimit) {
  options_.max_statement_bytes = 1024;
  std::vector<ChangeEvent> events;
  for (int i = 0; i < 200; ++i) events.push_back(Insert(R"({"_id": )" + std::to_string(i) + R"(, "s": "0123456789"})"));
  auto sql = Sql(events);
  EXPECT_GT(sql.size(), 3u);
  for (const std::string& s : sql) EXPECT_LE(s.size(), 1024u);
}

TEST_F(MappingTest, CompositeKeysUseRowConstructors) {
  Use("collections:\n  orders:\n    primary_key: [_id, tenant]\n");
  ChangeEvent del = Keyed(EventKind::kDelete, R"({"_id": 1, "tenant": "t"})");
  auto sql = Sql({Insert(R"({"_id": 1, "tenant": "t", "items": [{"a": 1}]})"), del});
  EXPECT_EQ(sql[2], "DELETE FROM `orders_items` WHERE (`_id`,`tenant`) IN ((1,'t'))");
}

TEST_F(MappingTest, DeltaUpdatesSetColumnsAndNullRemovedFields) {
  Sql({Insert(R"({"_id": 1, "a": {"b": 1, "c": 2}, "s": "x", "tags": [1], "items": [{"q": 1}]})")});
  ChangeEvent upd = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  upd.update = UpdateDescription{*BsonDocument::FromJson(R"({"a": {"b": 5}, "n": 1})"), {"s"}, {}};
  auto sql = Sql({upd});
  EXPECT_EQ(sql.back(), "UPDATE `orders` SET `a_b`=5,`a_c`=NULL,`n`=1,`s`=NULL WHERE `_id`=1");

  for (std::string path : {"items.0.q", "items", "tags.1", "a.b.c.d.e"}) {
    upd.update = UpdateDescription{*BsonDocument::FromJson("{\"" + path + "\": 1}"), {}, {}};
    auto m = mapper_->Map(upd, catalog_);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->document->kind, DocumentOpKind::kNeedsFullDocument) << path;
    EXPECT_FALSE(m->document->reason.empty());
  }
  upd.update = UpdateDescription{BsonDocument(), {}, {{"tags", 0}}};
  EXPECT_EQ(mapper_->Map(upd, catalog_)->document->kind, DocumentOpKind::kNeedsFullDocument);
}

TEST_F(MappingTest, UpdateWithoutDocumentOrDescriptionChangesNothing) {
  Sql({Insert(R"({"_id": 1})")});
  ChangeEvent upd = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  auto m = mapper_->Map(upd, catalog_);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->document->kind, DocumentOpKind::kNone);
}

TEST_F(MappingTest, NeedsFullDocumentBlocksRenderingUntilResolved) {
  Sql({Insert(R"({"_id": 1, "items": [{"q": 1}]})")});
  ChangeEvent upd = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  upd.update = UpdateDescription{*BsonDocument::FromJson(R"({"items.0.q": 2})"), {}, {}};
  Batch batch;
  batch.Add(*mapper_->Map(upd, catalog_), catalog_);
  ASSERT_EQ(batch.NeedsFullDocument().size(), 1u);
  EXPECT_FALSE(RenderBatch(batch, options_).ok());
  batch.Add(*mapper_->Map(Insert(R"({"_id": 1, "items": [{"q": 2}]})"), catalog_), catalog_);
  EXPECT_TRUE(batch.NeedsFullDocument().empty());
  EXPECT_TRUE(RenderBatch(batch, options_).ok());
}

TEST_F(MappingTest, ErrorsNameDocumentFieldAndCause) {
  Use("collections:\n  orders:\n    columns:\n      - {source: price, type: INT}\n");
  auto m = mapper_->Map(Insert(R"({"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "price": "cheap"})"), catalog_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kMapping);
  EXPECT_NE(m.status().message().find("orders _id={\"$oid\":\"65a1b2c3d4e5f60718293a4b\"} field price:"),
            std::string::npos) << m.status().message();
  EXPECT_EQ(catalog_.Find("orders"), nullptr);  // a failed event leaves the catalog untouched
}

TEST_F(MappingTest, YamlMappingRenamesExcludesAndIgnores) {
  Use(R"(
collections:
  orders:
    table: shop_orders
    exclude: [secret]
    unmapped: ignore
    columns:
      - {source: customer.name, column: customer}
      - total
)");
  Sql({Insert(R"({"_id": 1, "customer": {"name": "Ann", "age": 3}, "total": 5, "secret": "x", "other": 1})")});
  const TableSchema* t = catalog_.Find("shop_orders");
  ASSERT_NE(t, nullptr);
  std::vector<std::string> names;
  for (const ColumnSchema& c : t->columns) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"_id", "customer", "total"}));
  EXPECT_FALSE(ParseMappingYaml("bogus: 1").ok());
  EXPECT_FALSE(ParseMappingYaml("separator: '-'").ok());
  EXPECT_FALSE(ParseMappingYaml("collections: [").ok());
}

TEST(MappingYaml, TransformsAreRecordedForTheSinkToRefuse) {
  auto config = ParseMappingYaml("transforms:\n  totals: {from: orders, sql: SELECT 1}\n  big: {from: orders, sql: x}\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->spark_transforms, (std::vector<std::string>{"totals", "big"}));
  EXPECT_FALSE(ParseMappingYaml("transforms: [a]").ok());
}

TEST_F(MappingTest, RenameAndDropFollowPolicy) {
  Sql({Insert(R"({"_id": 1, "items": [{"a": 1}]})")});
  ChangeEvent ren = Keyed(EventKind::kRename, "{}");
  ren.rename_to_collection = "orders2";
  auto sql = Sql({ren});
  ASSERT_EQ(sql.size(), 3u);
  EXPECT_EQ(sql[0], "RENAME TABLE `orders` TO `orders2`, `orders_items` TO `orders2_items`");
  ASSERT_NE(catalog_.Find("orders2_items"), nullptr);
  EXPECT_TRUE(Sql({Keyed(EventKind::kDrop, "{}", "orders2")}).empty());  // kept by default
  Use("on_drop: drop");
  sql = Sql({Keyed(EventKind::kDrop, "{}", "orders2")});
  ASSERT_EQ(sql.size(), 1u);
  EXPECT_EQ(sql[0], "DROP TABLE IF EXISTS `orders2_items`, `orders2`");
  EXPECT_EQ(catalog_.Find("orders2"), nullptr);
}

TEST_F(MappingTest, SchemaSurvivesARestartThroughInformationSchema) {
  Sql({Insert(R"({"_id": 1, "a_b": 1, "a": {"b": 2}, "tags": [1]})")});
  // What information_schema returns for those tables.
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (const auto& [k, t] : catalog_.tables()) {
    for (const ColumnSchema& c : t.columns) {
      bool pk = std::find(t.primary_key.begin(), t.primary_key.end(), c.name) != t.primary_key.end();
      std::string type = c.type == SqlType::kJson ? "longtext" : AsciiLower(c.TypeDdl());
      rows.push_back({t.name, c.name, type, pk ? "PRI" : "", c.Comment(), t.source});
    }
  }
  auto restored = CatalogFromInformationSchema(rows);
  ASSERT_TRUE(restored.ok());
  const TableSchema* t = restored->Find("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->primary_key, std::vector<std::string>{"_id"});
  EXPECT_EQ(t->FindColumn("tags")->type, SqlType::kJson);
  catalog_ = std::move(*restored);
  auto sql = Sql({Insert(R"({"_id": 2, "a": {"b": 3}})")});
  ASSERT_EQ(sql.size(), 1u);  // no DDL: the nested field finds its hashed column again
  EXPECT_NE(sql[0].find(catalog_.Find("orders")->FindSource("[\"a\",\"b\"]")->name), std::string::npos);
  EXPECT_NE(InformationSchemaQuery("d'b").find("'d\\'b'"), std::string::npos);
}

}  // namespace
}  // namespace m2m
