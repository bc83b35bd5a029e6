#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "event_fixtures.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

using nlohmann::json;

ChangeEvent Convert(const testing::EventFixture& f) {
  std::optional<Namespace> fallback = f.Fallback();
  auto event = FromChangeStreamDocument(f.Get("raw")->get(), fallback ? &*fallback : nullptr);
  EXPECT_TRUE(event.ok()) << event.status().ToString();
  return event.ok() ? std::move(*event) : ChangeEvent{};
}

ChangeEvent Decoded(std::optional<std::string_view> key, std::optional<std::string_view> value) {
  auto decoded = DecodeEvent(key, value);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  if (!decoded.ok() || !decoded->has_value()) {
    ADD_FAILURE() << "no event decoded";
    return ChangeEvent{};
  }
  return std::move(**decoded);
}

std::string DecodeError(std::optional<std::string_view> key, std::optional<std::string_view> value) {
  auto decoded = DecodeEvent(key, value);
  EXPECT_FALSE(decoded.ok());
  if (decoded.ok()) return {};
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  return decoded.status().message();
}

BsonDocument Doc(std::string_view ejson) {
  auto doc = BsonDocument::FromJson(ejson);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(*doc) : BsonDocument();
}

TEST(EventJsonTest, EveryFixtureRoundTripsLosslessly) {
  for (const auto& f : testing::LoadEventFixtures()) {
    if (!f.Get("expected")) continue;
    SCOPED_TRACE(f.name);
    ChangeEvent event = Convert(f);
    std::string key = EncodeKey(event);
    std::string value = EncodeValue(event);
    testing::ExpectSameEvent(Decoded(key, value), event);
  }
}

TEST(EventJsonTest, DocumentGoneTravelsInOurBlockOnUpdatesOnly) {
  for (const auto& f : testing::LoadEventFixtures()) {
    if (f.name != "update_lookup_deleted") continue;
    ChangeEvent event = Convert(f);
    EXPECT_EQ(json::parse(EncodeValue(event))["m2m"].count("document_gone"), 0u);
    event.document_gone = true;
    std::string value = EncodeValue(event);
    EXPECT_EQ(json::parse(value)["m2m"]["document_gone"], true);
    ChangeEvent decoded = Decoded(EncodeKey(event), value);
    EXPECT_TRUE(decoded.document_gone);
    testing::ExpectSameEvent(decoded, event);

    json v = json::parse(value);
    v["m2m"]["document_gone"] = "yes";
    EXPECT_EQ(DecodeError(std::nullopt, v.dump()), "value.m2m.document_gone: must be true or false");
    return;
  }
  FAIL() << "fixture update_lookup_deleted not found";
}

TEST(EventJsonTest, KeyIsTheCanonicalIdAndStable) {
  ChangeEvent a;
  a.document_key = Doc(R"({"_id": {"$oid": "64f1d7f0a4f4d7a37f6c3a75"}, "region": "eu"})");
  EXPECT_EQ(EncodeKey(a), R"({"id":"{ \"$oid\" : \"64f1d7f0a4f4d7a37f6c3a75\" }"})");
  ChangeEvent b;  // same _id reached through another event kind and shard key value
  b.kind = EventKind::kDelete;
  b.document_key = Doc(R"({"region": "us", "_id": {"$oid": "64f1d7f0a4f4d7a37f6c3a75"}})");
  EXPECT_EQ(EncodeKey(a), EncodeKey(b));

  ChangeEvent i32, i64;
  i32.document_key = Doc(R"({"_id": 1})");
  i64.document_key = Doc(R"({"_id": {"$numberLong": "1"}})");
  EXPECT_EQ(EncodeKey(i32), R"({"id":"{ \"$numberInt\" : \"1\" }"})");
  EXPECT_NE(EncodeKey(i32), EncodeKey(i64));  // the type is part of the key; a stored _id keeps its type

  ChangeEvent drop;
  drop.kind = EventKind::kDrop;
  EXPECT_EQ(EncodeKey(drop), R"({"id":null})");
}

TEST(EventJsonTest, UpdateValueHasTheDebeziumShapeAndOurBlock) {
  auto fixtures = testing::LoadEventFixtures();
  auto it = std::find_if(fixtures.begin(), fixtures.end(), [](const auto& f) { return f.name == "update"; });
  ASSERT_NE(it, fixtures.end());
  EncodeOptions options;
  options.server_name = "rs0";
  options.processed_at_ms = 1693571070000;
  json v = json::parse(EncodeValue(Convert(*it), options));
  EXPECT_EQ(v["op"], "u");
  EXPECT_EQ(v["ts_ms"], 1693571070000);
  EXPECT_TRUE(v["after"].is_null());
  EXPECT_TRUE(v["before"].is_null());
  EXPECT_TRUE(v["transaction"].is_null());
  EXPECT_EQ(v["updateDescription"]["removedFields"], json::array({"phoneNumber"}));
  EXPECT_EQ(v["updateDescription"]["truncatedArrays"], json::parse(R"([{"field": "array", "size": 2}])"));
  EXPECT_TRUE(v["updateDescription"]["updatedFields"].is_string());
  const json& s = v["source"];
  EXPECT_EQ(s["connector"], "mongodb");
  EXPECT_EQ(s["name"], "rs0");
  EXPECT_EQ(s["db"], "engineering");
  EXPECT_EQ(s["collection"], "users");
  EXPECT_EQ(s["ts_ms"], 1693571061000);
  EXPECT_EQ(s["ord"], 2);
  EXPECT_EQ(s["snapshot"], "false");
  EXPECT_EQ(s["wallTime"], 1693571061000);
  EXPECT_TRUE(s["lsid"].is_null());
  const json& m = v["m2m"];
  EXPECT_EQ(m["v"], 1);
  EXPECT_EQ(m["event"], "update");
  EXPECT_EQ(m["cluster_time"], json::parse(R"({"t": 1693571061, "i": 2})"));
  EXPECT_EQ(m["document_key"], R"({ "_id" : { "$oid" : "64f1d7f0a4f4d7a37f6c3a75" } })");
  EXPECT_TRUE(m["resume_token"].get<std::string>().starts_with(R"({ "_data" : "8264F1D7F5)"));
}

TEST(EventJsonTest, CollectionEventsUseOpM) {
  for (const char* name : {"drop", "rename", "drop_database", "drop_invalidate"}) {
    SCOPED_TRACE(name);
    auto fixtures = testing::LoadEventFixtures();
    auto it = std::find_if(fixtures.begin(), fixtures.end(), [&](const auto& f) { return f.name == name; });
    ASSERT_NE(it, fixtures.end());
    json v = json::parse(EncodeValue(Convert(*it)));
    EXPECT_EQ(v["op"], "m");
    EXPECT_TRUE(v["after"].is_null());
    EXPECT_FALSE(v["m2m"].contains("document_key"));
    EXPECT_FALSE(v["m2m"].contains("copies"));  // not known: apply acts on each copy alone
  }
}

// Capture says how many partitions got a copy of a drop or rename; apply waits for all of them.
TEST(EventJsonTest, CollectionEventsCarryTheirCopyCount) {
  auto fixtures = testing::LoadEventFixtures();
  auto it = std::find_if(fixtures.begin(), fixtures.end(), [](const auto& f) { return f.name == "drop"; });
  ASSERT_NE(it, fixtures.end());
  ChangeEvent drop = Convert(*it);
  drop.copies = 4;
  std::string value = EncodeValue(drop);
  EXPECT_EQ(json::parse(value)["m2m"]["copies"], 4);
  testing::ExpectSameEvent(Decoded(EncodeKey(drop), value), drop);
  json bad = json::parse(value);
  bad["m2m"]["copies"] = 0;
  auto decoded = DecodeEvent(EncodeKey(drop), bad.dump());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().message(), "value.m2m.copies: 0 is not a partition count");
}

TEST(EventJsonTest, SnapshotReadsAreMarked) {
  auto doc = Doc(R"({"_id": 1, "x": "y"})");
  ChangeEvent read = *MakeSnapshotRead("db", "c", doc.get());
  json v = json::parse(EncodeValue(read));
  EXPECT_EQ(v["op"], "r");
  EXPECT_EQ(v["source"]["snapshot"], "true");
  EncodeOptions last;
  last.last_snapshot_record = true;
  EXPECT_EQ(json::parse(EncodeValue(read, last))["source"]["snapshot"], "last");
  testing::ExpectSameEvent(Decoded(EncodeKey(read), EncodeValue(read, last)), read);
}

TEST(EventJsonTest, EncodeOptionsValidate) {
  EXPECT_TRUE(EncodeOptions{}.Validate().ok());
  EncodeOptions bad;
  bad.server_name = "";
  EXPECT_EQ(bad.Validate().message(), "EncodeOptions.server_name must not be empty");
}

TEST(EventJsonTest, EventKindNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(EventKind::kInvalidate); ++i) {
    auto kind = static_cast<EventKind>(i);
    EXPECT_EQ(*ParseEventKind(EventKindName(kind)), kind);
  }
  EXPECT_FALSE(ParseEventKind("truncate").ok());
}

// ---------------------------------------------------------------------------------------------
// Debezium MongoDB connector events (2.x, JSON converter), shaped after its documentation:
// documentation/modules/ROOT/pages/connectors/mongodb.adoc in debezium/debezium.

constexpr const char* kDebeziumSource = R"({"version": "2.7.0.Final", "connector": "mongodb", "name": "fulfillment",
    "ts_ms": 1558965508000, "snapshot": "false", "db": "inventory", "sequence": null, "collection": "customers",
    "ord": 31, "lsid": null, "txnNumber": null, "wallTime": 1558965508123})";

std::string DebeziumValue(std::string_view op, std::string_view rest) {
  return R"({"op": ")" + std::string(op) + R"(", "ts_ms": 1558965515240, "source": )" + kDebeziumSource +
         R"(, "transaction": null)" + std::string(rest) + "}";
}

std::string WithSchema(const std::string& payload) {
  return R"({"schema": {"type": "struct", "optional": false, "name": "fulfillment.inventory.customers.Envelope",
      "fields": []}, "payload": )" +
         payload + "}";
}

constexpr const char* kDebeziumKey = R"({"id": "1004"})";
constexpr const char* kDebeziumAfter =
    R"("{\"_id\" : {\"$numberLong\" : \"1004\"},\"first_name\" : \"Anne\",\"since\" : {\"$date\" : 1558965508000}}")";

TEST(EventJsonTest, DebeziumEventsDecodeWithAndWithoutTheSchemaEnvelope) {
  const std::string create = DebeziumValue("c", std::string(R"(, "after": )") + kDebeziumAfter);
  const std::string read = DebeziumValue("r", std::string(R"(, "after": )") + kDebeziumAfter);
  const std::string update = DebeziumValue(
      "u", R"(, "before": null, "after": null, "updateDescription": {"removedFields": ["email"],
          "updatedFields": "{\"first_name\": \"Anne Marie\"}", "truncatedArrays": [{"field": "tags", "size": 1}]})");
  const std::string replace = DebeziumValue("u", std::string(R"(, "after": )") + kDebeziumAfter);
  const std::string del = DebeziumValue("d", R"(, "before": "{\"_id\": {\"$numberLong\": \"1004\"}}")");
  const BsonDocument after = Doc(R"({"_id": {"$numberLong": "1004"}, "first_name": "Anne",
                                     "since": {"$date": {"$numberLong": "1558965508000"}}})");

  for (bool enveloped : {false, true}) {
    SCOPED_TRACE(enveloped ? "schema envelope" : "schemaless");
    auto wrap = [&](const std::string& v) { return enveloped ? WithSchema(v) : v; };
    std::string key = enveloped ? WithSchema(kDebeziumKey) : kDebeziumKey;

    ChangeEvent c = Decoded(key, wrap(create));
    EXPECT_EQ(c.kind, EventKind::kInsert);
    EXPECT_EQ(c.db, "inventory");
    EXPECT_EQ(c.collection, "customers");
    EXPECT_TRUE(c.after == after) << testing::Show(c.after);
    // From after, which keeps the int64 type the key's "1004" loses.
    EXPECT_TRUE(c.document_key == Doc(R"({"_id": {"$numberLong": "1004"}})")) << c.document_key.ToCanonicalJson();
    EXPECT_EQ(c.cluster_time_s, 1558965508u);
    EXPECT_EQ(c.cluster_time_i, 31u);
    EXPECT_EQ(c.wall_time_ms, 1558965508123);
    EXPECT_TRUE(c.resume_token.empty());

    EXPECT_EQ(Decoded(key, wrap(read)).kind, EventKind::kRead);

    ChangeEvent u = Decoded(key, wrap(update));
    EXPECT_EQ(u.kind, EventKind::kUpdate);
    ASSERT_TRUE(u.update.has_value());
    EXPECT_TRUE(u.update->updated_fields == Doc(R"({"first_name": "Anne Marie"})"));
    EXPECT_EQ(u.update->removed_fields, std::vector<std::string>{"email"});
    ASSERT_EQ(u.update->truncated_arrays.size(), 1u);
    EXPECT_EQ(u.update->truncated_arrays[0].field, "tags");
    EXPECT_EQ(u.update->truncated_arrays[0].new_size, 1);
    EXPECT_FALSE(u.after.has_value());
    EXPECT_TRUE(u.document_key == Doc(R"({"_id": 1004})"));  // only the key had it

    ChangeEvent r = Decoded(key, wrap(replace));
    EXPECT_EQ(r.kind, EventKind::kReplace);
    EXPECT_FALSE(r.update.has_value());

    ChangeEvent d = Decoded(key, wrap(del));
    EXPECT_EQ(d.kind, EventKind::kDelete);
    EXPECT_TRUE(d.before == Doc(R"({"_id": {"$numberLong": "1004"}})"));
    EXPECT_TRUE(d.document_key == Doc(R"({"_id": 1004})"));
  }
}

TEST(EventJsonTest, DebeziumKeysOfOtherIdTypes) {
  const std::string del = DebeziumValue("d", "");
  EXPECT_TRUE(Decoded(R"({"id": "\"1234\""})", del).document_key == Doc(R"({"_id": "1234"})"));
  EXPECT_TRUE(Decoded(R"({"id": "{\"$oid\" : \"596e275826f08b2730779e1f\"}"})", del).document_key ==
              Doc(R"({"_id": {"$oid": "596e275826f08b2730779e1f"}})"));
  EXPECT_TRUE(Decoded(R"({"id": "{\"$binary\" : \"a2Fma2E=\", \"$type\" : \"00\"}"})", del).document_key ==
              Doc(R"({"_id": {"$binary": {"base64": "a2Fma2E=", "subType": "00"}}})"));
  EXPECT_TRUE(Decoded(R"({"id": "{\"hi\" : \"kafka\", \"nums\" : [10.0, 100.0]}"})", del).document_key ==
              Doc(R"({"_id": {"hi": "kafka", "nums": [10.0, 100.0]}})"));
}

TEST(EventJsonTest, DebeziumTransactionFields) {
  std::string source = kDebeziumSource;
  source.replace(source.find(R"("lsid": null, "txnNumber": null)"), 31,
                 R"("lsid": "{\"id\": {\"$binary\": \"FA7YEzXgQXSX9OxmzllH2w==\",\"$type\": \"04\"}}", "txnNumber": 1)");
  std::string value = R"({"op": "d", "source": )" + source + "}";
  ChangeEvent d = Decoded(kDebeziumKey, value);
  EXPECT_EQ(d.txn_number, 1);
  ASSERT_TRUE(d.txn_lsid.has_value());
  EXPECT_NE(d.txn_lsid->find("FA7YEzXgQXSX9OxmzllH2w=="), std::string::npos);
}

TEST(EventJsonTest, TombstonesAreSkippedNotErrors) {
  for (std::optional<std::string_view> value :
       {std::optional<std::string_view>(), std::optional<std::string_view>("null"),
        std::optional<std::string_view>(R"({"schema": null, "payload": null})")}) {
    auto decoded = DecodeEvent(kDebeziumKey, value);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_FALSE(decoded->has_value());
  }
}

TEST(EventJsonTest, DecodeErrorsNameTheFieldAndCause) {
  EXPECT_EQ(DecodeError(kDebeziumKey, "{not json"), "value: not valid JSON");
  EXPECT_EQ(DecodeError(kDebeziumKey, "[1]"), "value: expected an object");
  EXPECT_EQ(DecodeError(kDebeziumKey, R"({"op": "c"})"), "value.source: missing");
  EXPECT_EQ(DecodeError(kDebeziumKey, DebeziumValue("t", "")),
            "value.op: unsupported operation \"t\" (expected c, u, d or r)");
  EXPECT_EQ(DecodeError(kDebeziumKey, DebeziumValue("c", "")), "value.after: missing on op \"c\"");
  EXPECT_TRUE(DecodeError(kDebeziumKey, DebeziumValue("c", R"(, "after": "{\"a\": ")"))
                  .starts_with("value.after: invalid Extended JSON document"));
  EXPECT_EQ(DecodeError(kDebeziumKey, DebeziumValue("c", R"(, "after": 5)")),
            "value.after: expected a string, got number");
  EXPECT_EQ(DecodeError(std::nullopt, DebeziumValue("d", "")),
            "key: missing (a Debezium event without after needs the key's id)");
  EXPECT_EQ(DecodeError(R"({"id": 5})", DebeziumValue("d", "")), "key.id: expected a string, got number");
  EXPECT_EQ(DecodeError(kDebeziumKey, DebeziumValue("u", R"(, "updateDescription": {"removedFields": [1]})")),
            "value.updateDescription.removedFields[0]: expected a string");

  // Our own format.
  ChangeEvent read = *MakeSnapshotRead("db", "c", Doc(R"({"_id": 1})").get());
  json v = json::parse(EncodeValue(read));
  v["m2m"]["v"] = 2;
  EXPECT_EQ(DecodeError(std::nullopt, v.dump()),
            "value.m2m.v: unsupported event format version 2 (this build reads 1)");
  v["m2m"]["v"] = 1;
  v["op"] = "c";
  EXPECT_EQ(DecodeError(std::nullopt, v.dump()), "value.op: \"c\" does not match m2m.event \"read\"");
  v["op"] = "r";
  v["m2m"]["event"] = "truncate";
  EXPECT_EQ(DecodeError(std::nullopt, v.dump()), "value.m2m.event: unknown event kind \"truncate\"");
  v["m2m"]["event"] = "read";
  v["m2m"]["document_gone"] = true;
  EXPECT_EQ(DecodeError(std::nullopt, v.dump()),
            "value.m2m.document_gone: present on an event that is not an update");
  v["m2m"].erase("document_gone");
  v["m2m"].erase("cluster_time");
  EXPECT_EQ(DecodeError(std::nullopt, v.dump()), "value.m2m.cluster_time: missing");
}

// ---------------------------------------------------------------------------------------------
// Split events

BsonDocument Fragment(int n, int of, std::string_view fields) {
  std::string id = std::to_string(n);
  return Doc(R"({"_id": {"_data": "T)" + id + R"("}, "splitEvent": {"fragment": )" + id + R"(, "of": )" +
             std::to_string(of) + "}" + std::string(fields) + "}");
}

TEST(SplitEventAssemblerTest, UnsplitEventsPassThrough) {
  SplitEventAssembler assembler;
  BsonDocument event = Doc(R"({"_id": {"_data": "A"}, "operationType": "insert"})");
  auto out = assembler.Add(event.get());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->has_value());
  EXPECT_TRUE(**out == event);
}

TEST(SplitEventAssemblerTest, OutOfOrderFragmentIsAnErrorNamingTheToken) {
  SplitEventAssembler assembler;
  ASSERT_TRUE(assembler.Add(Fragment(1, 3, R"(, "a": 1)").get()).ok());
  EXPECT_TRUE(assembler.pending());
  auto out = assembler.Add(Fragment(3, 3, R"(, "c": 1)").get());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            R"(split change stream event at resume token { "_data" : "T3" }: got fragment 3 of 3, expected fragment 2 of 3)");
  EXPECT_FALSE(assembler.pending());  // dropped: capture resumes before fragment 1
}

TEST(SplitEventAssemblerTest, MissingFragmentsAreErrors) {
  SplitEventAssembler assembler;
  auto out = assembler.Add(Fragment(2, 2, "").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("got fragment 2 of 2 without the fragments before it"), std::string::npos);

  ASSERT_TRUE(assembler.Add(Fragment(1, 2, R"(, "a": 1)").get()).ok());
  out = assembler.Add(Doc(R"({"_id": {"_data": "B"}, "operationType": "insert"})").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("expected fragment 2 of 2, got an unsplit event"), std::string::npos);

  ASSERT_TRUE(assembler.Add(Fragment(1, 2, R"(, "a": 1)").get()).ok());
  out = assembler.Add(Fragment(2, 3, "").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("got fragment 2 of 3, expected fragment 2 of 2"), std::string::npos);
}

TEST(SplitEventAssemblerTest, MalformedFragmentsAreErrors) {
  SplitEventAssembler assembler;
  auto out = assembler.Add(Doc(R"({"_id": {"_data": "X"}, "splitEvent": {"fragment": 1}})").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("field \"splitEvent.of\" is missing or not an int32"), std::string::npos);
  out = assembler.Add(Fragment(3, 2, "").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("fragment 3 of 2 is out of range"), std::string::npos);
  ASSERT_TRUE(assembler.Add(Fragment(1, 2, R"(, "a": 1)").get()).ok());
  out = assembler.Add(Fragment(2, 2, R"(, "a": 2)").get());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("field \"a\" is in two fragments"), std::string::npos);
}

TEST(SplitEventAssemblerTest, ResetDropsPendingFragments) {
  SplitEventAssembler assembler;
  ASSERT_TRUE(assembler.Add(Fragment(1, 2, R"(, "a": 1)").get()).ok());
  assembler.Reset();
  EXPECT_FALSE(assembler.pending());
  auto out = assembler.Add(Fragment(1, 1, R"(, "b": 1)").get());
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->has_value());
  EXPECT_TRUE(**out == Doc(R"({"_id": {"_data": "T1"}, "b": 1})")) << (*out)->ToCanonicalJson();
}

}  // namespace
}  // namespace m2m
