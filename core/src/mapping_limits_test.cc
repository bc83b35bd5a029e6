// The mapping against the target server's limits (target_limits.h) and real-world shapes: every
// valid document maps to tables the server accepts, with nothing lost.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "m2m/mapping.h"
#include "m2m/target_limits.h"
#include "mapping_test_util.h"

namespace m2m {
namespace {

// {"_id": 1, "<prefix>0": <value(0)>, ...}
std::string Wide(int fields, const std::string& prefix, const std::function<std::string(int)>& value) {
  std::string doc = R"({"_id": 1)";
  for (int i = 0; i < fields; ++i) doc += ", \"" + prefix + std::to_string(i) + "\": " + value(i);
  return doc + "}";
}

std::string Nested(int levels, const std::string& leaf) {
  std::string doc;
  for (int i = 0; i < levels; ++i) doc += R"({"a": )";
  doc += leaf;
  for (int i = 0; i < levels; ++i) doc += "}";
  return doc;
}

class LimitsTest : public MappingTest {
 protected:
  MappedEvent MapOne(const ChangeEvent& ev) {
    auto m = mapper_->Map(ev, catalog_);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(*m) : MappedEvent{};
  }
  static const SqlValue* Cell(const Row& row, const std::string& column) {
    for (const ColumnValue& cv : row) {
      if (cv.column == column) return &cv.value;
    }
    return nullptr;
  }
  // Every table stays within what the server accepts.
  void ExpectServerAccepts() {
    for (const auto& [k, t] : catalog_.tables()) {
      EXPECT_TRUE(WithinLimits(t.columns, mapper_->config().options.limits, true)) << t.name;
      EXPECT_LE(t.primary_key.size(), 16u) << t.name;
    }
  }
};

TEST_F(LimitsTest, FieldsPastTheColumnBudgetLandInTheOverflowColumn) {
  Use("max_columns: 50");
  MappedEvent m = MapOne(Insert(Wide(100, "f", [](int i) { return std::to_string(i); })));
  const TableSchema* t = catalog_.Find("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->columns.size(), 50u);
  ASSERT_NE(t->FindColumn("_overflow"), nullptr);
  EXPECT_EQ(t->FindColumn("_overflow")->type, SqlType::kJson);
  const SqlValue* overflow = Cell(m.document->row, "_overflow");
  ASSERT_NE(overflow, nullptr);
  nlohmann::json kept = nlohmann::json::parse(overflow->text);
  // 48 fields have columns (_id and _overflow take two): the other 52 are in the overflow, exactly.
  ASSERT_EQ(kept.size(), 52u);
  EXPECT_EQ(kept["f48"], 48);
  EXPECT_EQ(kept["f99"], 99);
  EXPECT_EQ(Cell(m.document->row, "f47")->text, "47");
  // A later document finds the same split: no new column, the overflow holds only what it has.
  m = MapOne(Insert(R"({"_id": 2, "f0": 5, "f99": {"x": [1, 2]}})"));
  EXPECT_TRUE(m.schema_changes.empty());
  EXPECT_EQ(nlohmann::json::parse(Cell(m.document->row, "_overflow")->text), nlohmann::json::parse(R"({"f99": {"x": [1, 2]}})"));
}

TEST_F(LimitsTest, TwoThousandFieldsStayWithinTheServerLimits) {
  MapOne(Insert(Wide(2000, "field_with_a_realistic_length_", [](int i) { return "\"v" + std::to_string(i) + "\""; })));
  const TableSchema* t = catalog_.Find("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_LE(t->columns.size(), 500u);
  EXPECT_TRUE(WithinLimits(t->columns, TargetLimits{}, false));
  ExpectServerAccepts();
}

TEST_F(LimitsTest, InlineRowBytesBoundTheColumnsOfWideTypes) {
  // CHAR(24) costs 96 inline bytes in utf8mb4: about 67 fit the default budget, not 100.
  MappedEvent m = MapOne(Insert(Wide(100, "o", [](int i) {
    char hex[25];
    std::snprintf(hex, sizeof hex, "%024x", i + 1);
    return std::string(R"({"$oid": ")") + hex + "\"}";
  })));
  const TableSchema* t = catalog_.Find("orders");
  EXPECT_LT(t->columns.size(), 80u);
  nlohmann::json kept = nlohmann::json::parse(Cell(m.document->row, "_overflow")->text);
  EXPECT_EQ(kept["o99"]["$oid"], "000000000000000000000064");
  ExpectServerAccepts();
}

TEST_F(LimitsTest, AWideningPastTheServerLimitGoesToTheOverflowColumn) {
  MapOne(Insert(Wide(400, "n", [](int i) { return std::to_string(i); })));
  // DECIMAL(65,30) takes 30 inline bytes against INT's 4: not all 400 columns can widen.
  MappedEvent m = MapOne(Insert(Wide(400, "n", [](int) { return R"({"$numberDecimal": "1.5"})"; })));
  const SqlValue* overflow = Cell(m.document->row, "_overflow");
  ASSERT_NE(overflow, nullptr);
  nlohmann::json kept = nlohmann::json::parse(overflow->text);
  EXPECT_GT(kept.size(), 0u);
  EXPECT_LT(kept.size(), 400u);
  EXPECT_EQ(kept.begin().value()["$numberDecimal"], "1.5");
  ExpectServerAccepts();
}

TEST_F(LimitsTest, MapsKeyedByDataAreOneJsonColumn) {
  for (std::string key : {"0df078f33aa74a2e9696e0520c1a828a", "65a1b2c3d4e5f60718293a4b", "2024-01-31", "17",
                          "-3", "123e4567-e89b-12d3-a456-426614174000", "2024-01", "2024/01/31T10:00"}) {
    catalog_ = {};
    MappedEvent m = MapOne(Insert(R"({"_id": 1, "tier_and_details": {")" + key +
                                  R"(": {"tier": "Bronze", "benefits": ["a"]}, "name": "x"}})"));
    const TableSchema* t = catalog_.Find("orders");
    ASSERT_EQ(t->columns.size(), 2u) << key;
    EXPECT_EQ(t->columns[1].name, "tier_and_details");
    EXPECT_EQ(t->columns[1].type, SqlType::kJson);
    EXPECT_EQ(nlohmann::json::parse(Cell(m.document->row, "tier_and_details")->text)[key]["tier"], "Bronze");
  }
  // Names are not data: locales, words, versions flatten.
  catalog_ = {};
  MapOne(Insert(R"({"_id": 1, "title": {"en": "a", "pt_BR": "b", "v2": "c", "2fa": true}})"));
  EXPECT_NE(Column("orders", "title_pt_BR"), nullptr);
  EXPECT_NE(Column("orders", "title_2fa"), nullptr);
}

TEST_F(LimitsTest, ASubDocumentWithManyKeysIsAMap) {
  Use("map_threshold: 4");
  MapOne(Insert(R"({"_id": 1, "attrs": {"a": 1, "b": 2, "c": 3, "d": 4}})"));
  EXPECT_NE(Column("orders", "attrs_d"), nullptr);
  MappedEvent m = MapOne(Insert(R"({"_id": 2, "attrs": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}})"));
  EXPECT_EQ(TypeOf("orders", "attrs"), SqlType::kJson);
  EXPECT_EQ(Column("orders", "attrs_e"), nullptr);
  EXPECT_EQ(Cell(m.document->row, "attrs_a"), nullptr);
  EXPECT_EQ(nlohmann::json::parse(Cell(m.document->row, "attrs")->text)["e"], 5);
}

TEST_F(LimitsTest, TheYamlMappingDecidesWhatIsAMap) {
  Use("collections:\n  orders:\n    maps: {settings: json, by_day: flatten}\n");
  MapOne(Insert(R"({"_id": 1, "settings": {"theme": "dark"}, "by_day": {"2024-01-01": 3}})"));
  EXPECT_EQ(TypeOf("orders", "settings"), SqlType::kJson);
  EXPECT_EQ(Column("orders", "settings_theme"), nullptr);
  EXPECT_EQ(TypeOf("orders", "by_day"), SqlType::kNull);
  EXPECT_FALSE(ParseMappingYaml("collections:\n  orders:\n    maps: {a: table}\n").ok());
}

TEST_F(LimitsTest, JsonDeeperThanTheServerTakesIsText) {
  // 40 levels: flattened 3 deep, the rest is JSON 37 deep, past MariaDB's 31.
  MappedEvent m = MapOne(Insert(R"({"_id": 1, "deep": )" + Nested(40, "1") + "}"));
  const TableSchema* t = catalog_.Find("orders");
  const ColumnSchema* c = &t->columns.back();
  EXPECT_TRUE(IsTextType(c->type)) << SqlTypeName(c->type);
  EXPECT_EQ(JsonDepth(Cell(m.document->row, c->name)->text), 37);
  // A shallow value later keeps the text column (no JSON CHECK that the deep value would fail).
  MapOne(Insert(R"({"_id": 2, "deep": )" + Nested(4, "1") + "}"));
  EXPECT_TRUE(IsTextType(catalog_.Find("orders")->columns.back().type));
  // MySQL 8 takes 100 levels.
  MappingConfig config;
  config.options.limits = TargetLimits::ForServer("8.0.36");
  mapper_ = std::make_unique<Mapper>(*Mapper::Make(config));
  catalog_ = {};
  MapOne(Insert(R"({"_id": 1, "deep": )" + Nested(40, "1") + "}"));
  EXPECT_EQ(catalog_.Find("orders")->columns.back().type, SqlType::kJson);
  EXPECT_EQ(TargetLimits::ForServer("10.11.6-MariaDB-0+deb12u1").max_json_depth, 31);
}

TEST_F(LimitsTest, ArraysPastSixteenKeyPartsStayJsonInTheirRow) {
  std::string doc = "1";
  for (int i = 0; i < 20; ++i) doc = R"([{"v": )" + std::to_string(i) + R"(, "a": )" + doc + "}]";
  MapOne(Insert(R"({"_id": 1, "a": )" + doc + "}"));
  // _id plus 15 array levels make 16 key parts; the 16th level's array is a JSON column.
  EXPECT_EQ(catalog_.tables().size(), 16u);
  size_t deepest = 0;
  for (const auto& [k, t] : catalog_.tables()) deepest = std::max(deepest, t.primary_key.size());
  EXPECT_EQ(deepest, 16u);
  ExpectServerAccepts();
}

TEST_F(LimitsTest, FourByteAndControlCharacterNamesKeepTheirColumnThroughARestart) {
  const std::string emoji = "emoji\xF0\x9F\x98\x80";
  const std::string doc = R"({"_id": 1, ")" + emoji + R"(": 1, "tab\tnew\nline": 2, ")" + std::string(300, 'x') + R"(": 3})";
  Sql({Insert(doc)});
  const ColumnSchema* c = catalog_.Find("orders")->columns.data() + 1;
  EXPECT_EQ(c->source, "[\"emoji\\ud83d\\ude00\"]");
  Restart();
  auto sql = Sql({Insert(doc), Insert(doc), Insert(doc)});
  ASSERT_EQ(sql.size(), 1u) << sql[0];  // the upsert only: no column is added again
}

TEST_F(LimitsTest, DottedFieldNamesInDeltasFollowDisambiguatedPaths) {
  MapOne(Insert(R"({"_id": 1, "a.b": 1, "a": {"b": 2}})"));
  const std::string dotted = catalog_.Find("orders")->FindSource(R"(["a.b"])")->name;
  ChangeEvent up = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  up.update.emplace();
  up.update->updated_fields = *BsonDocument::FromJson(R"({"a.b": 5})");
  up.update->disambiguated_paths = *BsonDocument::FromJson(R"({"a.b": ["a.b"]})");
  MappedEvent m = MapOne(up);
  ASSERT_EQ(m.document->kind, DocumentOpKind::kUpdate);
  ASSERT_EQ(m.document->set.size(), 1u);
  EXPECT_EQ(m.document->set[0].column, dotted);
  // Without disambiguatedPaths (MongoDB before 6.1) "a.b" may be either field: fetch the document.
  up.update->disambiguated_paths = {};
  EXPECT_EQ(MapOne(up).document->kind, DocumentOpKind::kNeedsFullDocument);
  // A path through a map keyed by data cannot be a column either.
  catalog_ = {};
  MapOne(Insert(R"({"_id": 1, "n": 1})"));
  up.update->updated_fields = *BsonDocument::FromJson(R"({"by_id.65a1b2c3d4e5f60718293a4b.x": 5})");
  EXPECT_EQ(MapOne(up).document->kind, DocumentOpKind::kNeedsFullDocument);
}

TEST_F(LimitsTest, ADeltaOnATableWithAnOverflowColumnFetchesTheDocument) {
  Use("max_columns: 8");
  MapOne(Insert(Wide(10, "f", [](int i) { return std::to_string(i); })));
  ChangeEvent up = Keyed(EventKind::kUpdate, R"({"_id": 1})");
  up.update.emplace();
  up.update->updated_fields = *BsonDocument::FromJson(R"({"f1": 5})");
  MappedEvent m = MapOne(up);
  EXPECT_EQ(m.document->kind, DocumentOpKind::kNeedsFullDocument);
  EXPECT_NE(m.document->reason.find("overflow"), std::string::npos) << m.document->reason;
}

TEST_F(LimitsTest, ARenameReplayedAfterACrashFinishesIt) {
  Sql({Insert(R"({"_id": 1, "items": [{"a": 1}]})")});
  Catalog before = catalog_;
  ChangeEvent ren = Keyed(EventKind::kRename, "{}");
  ren.rename_to_collection = "orders2";
  // Crashed after RENAME TABLE, before any COMMENT: the tables have new names and old sources.
  for (bool child_recommented : {false, true}) {
    catalog_ = {};
    for (const auto& [k, t] : before.tables()) {
      TableSchema moved = t;
      moved.name = t.name == "orders" ? "orders2" : "orders2_items";
      if (child_recommented && moved.name == "orders2_items") moved.source = R"(["orders2",["items"]])";
      catalog_.Add(moved);
    }
    auto sql = Sql({ren});
    ASSERT_EQ(sql.size(), 2u) << child_recommented;
    EXPECT_EQ(sql[0], R"(ALTER TABLE `orders2_items` COMMENT='[\"orders2\",[\"items\"]]')");
    EXPECT_EQ(sql[1], R"(ALTER TABLE `orders2` COMMENT='[\"orders2\"]')");
  }
}

TEST_F(LimitsTest, FieldsNamedLikeStructuralColumnsNeverDuplicateOne) {
  // An element field `_value` takes the clean name first; the scalar elements' `_value` comes later.
  Sql({Insert(R"({"_id": 1, "mixed": [{"_value": "field", "_idx1": 7, "_id": "own"}, "scalar"]})")});
  const TableSchema* t = catalog_.Find("orders_mixed");
  ASSERT_NE(t, nullptr);
  std::set<std::string> names;
  for (const ColumnSchema& c : t->columns) EXPECT_TRUE(names.insert(AsciiLower(c.name)).second) << c.name;
  EXPECT_EQ(t->FindSource("#value")->name, "_value_" + Fnv1a32Hex("#value"));
  EXPECT_EQ(t->FindSource(R"(["_value"])")->name, "_value");
}

TEST(TargetLimitsTest, JsonDepthCountsNestingOutsideStrings) {
  EXPECT_EQ(JsonDepth("1"), 0);
  EXPECT_EQ(JsonDepth("[]"), 1);
  EXPECT_EQ(JsonDepth(R"({"a":[{"b":"[[[\"]]"}]})"), 3);
  EXPECT_FALSE(TargetLimits{.max_columns = 2000}.Validate().ok());
}

}  // namespace
}  // namespace m2m
