// EncodeKey and EncodeValue against the encoder they replaced (nlohmann::ordered_json over libbson's
// canonical Extended JSON, kept here as the reference): the same bytes for every recorded event and
// for random events with hostile strings and documents, since consumers and Kafka's partitioner
// see the bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "canonical_json_testing.h"
#include "event_fixtures.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

using ordered_json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// The reference: event_json.cc's encoder before the one-pass writer, verbatim but for the canonical
// form, which comes from libbson here.

std::string LegacyCanonical(const BsonDocument& doc) { return testing::LibbsonCanonical(doc.get()).value_or(""); }

std::string_view LegacyOpCode(EventKind kind) {
  switch (kind) {
    case EventKind::kRead: return "r";
    case EventKind::kInsert: return "c";
    case EventKind::kUpdate:
    case EventKind::kReplace: return "u";
    case EventKind::kDelete: return "d";
    default: return "m";
  }
}

ordered_json OptionalText(const std::string& s) { return s.empty() ? ordered_json(nullptr) : ordered_json(s); }

ordered_json OptionalDocumentJson(const std::optional<BsonDocument>& doc) {
  return doc ? ordered_json(LegacyCanonical(*doc)) : ordered_json(nullptr);
}

ordered_json UpdateDescriptionJson(const UpdateDescription& u) {
  ordered_json out = ordered_json::object();
  out["removedFields"] = u.removed_fields.empty() ? ordered_json(nullptr) : ordered_json(u.removed_fields);
  out["updatedFields"] = LegacyCanonical(u.updated_fields);
  if (u.truncated_arrays.empty()) {
    out["truncatedArrays"] = nullptr;
  } else {
    ordered_json arrays = ordered_json::array();
    for (const auto& t : u.truncated_arrays) arrays.push_back({{"field", t.field}, {"size", t.new_size}});
    out["truncatedArrays"] = std::move(arrays);
  }
  return out;
}

ordered_json SourceJson(const ChangeEvent& event, const EncodeOptions& options) {
  ordered_json s = ordered_json::object();
  s["version"] = "mongo2mysql/1";
  s["connector"] = "mongodb";
  s["name"] = options.server_name;
  s["ts_ms"] = event.cluster_time_s != 0 ? static_cast<int64_t>(event.cluster_time_s) * 1000 : event.wall_time_ms;
  s["snapshot"] = event.kind != EventKind::kRead ? "false" : options.last_snapshot_record ? "last" : "true";
  s["db"] = event.db;
  s["collection"] = OptionalText(event.collection);
  s["ord"] = event.cluster_time_i;
  s["lsid"] = event.txn_lsid ? ordered_json(*event.txn_lsid) : ordered_json(nullptr);
  s["txnNumber"] = event.txn_number ? ordered_json(*event.txn_number) : ordered_json(nullptr);
  s["wallTime"] = event.wall_time_ms;
  return s;
}

ordered_json M2mJson(const ChangeEvent& event) {
  ordered_json m = ordered_json::object();
  m["v"] = kEventFormatVersion;
  m["event"] = EventKindName(event.kind);
  if (!event.resume_token.empty()) m["resume_token"] = event.resume_token;
  m["cluster_time"] = {{"t", event.cluster_time_s}, {"i", event.cluster_time_i}};
  if (!event.document_key.empty()) m["document_key"] = LegacyCanonical(event.document_key);
  if (event.kind == EventKind::kRename) {
    m["rename_to"] = {{"db", event.rename_to_db}, {"collection", event.rename_to_collection}};
  }
  if (event.copies > 0) m["copies"] = event.copies;
  if (event.update && !event.update->disambiguated_paths.empty()) {
    m["disambiguated_paths"] = LegacyCanonical(event.update->disambiguated_paths);
  }
  if (event.document_gone) m["document_gone"] = true;
  return m;
}

std::string LegacyEncodeKey(const ChangeEvent& event) {
  ordered_json key = ordered_json::object();
  bson_iter_t id;
  if (bson_iter_init_find(&id, event.document_key.get(), "_id")) {
    key["id"] = testing::LibbsonCanonicalValue(&id).value_or("");
  } else {
    key["id"] = nullptr;
  }
  return key.dump();
}

ordered_json LegacyValueJson(const ChangeEvent& event, const EncodeOptions& options) {
  ordered_json v = ordered_json::object();
  v["before"] = OptionalDocumentJson(event.before);
  v["after"] = OptionalDocumentJson(event.after);
  v["updateDescription"] = event.update ? UpdateDescriptionJson(*event.update) : ordered_json(nullptr);
  v["source"] = SourceJson(event, options);
  v["op"] = LegacyOpCode(event.kind);
  v["ts_ms"] = options.processed_at_ms != 0 ? options.processed_at_ms : event.wall_time_ms;
  v["transaction"] = nullptr;
  v["m2m"] = M2mJson(event);
  return v;
}

std::string LegacyEncodeValue(const ChangeEvent& event, const EncodeOptions& options) {
  return LegacyValueJson(event, options).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------------

// EncodeEvent gives EncodeKey's and EncodeValue's bytes, and refuses just the events with a document
// libbson cannot write as JSON (text that is not UTF-8, in a string, a name, a regex, code, a symbol)
// or a name or other string that is not UTF-8 (a removed field's name must not become another).
void ExpectEncodeEventAsTheTwo(const ChangeEvent& event, const EncodeOptions& options) {
  auto writable = [](const BsonDocument& doc) { return testing::LibbsonCanonical(doc.get()).has_value(); };
  bool all_writable = writable(event.document_key) && (!event.before || writable(*event.before)) &&
                      (!event.after || writable(*event.after)) &&
                      (!event.update ||
                       (writable(event.update->updated_fields) && writable(event.update->disambiguated_paths)));
  try {  // every string the value carries: nlohmann's strict dump throws on one that is not UTF-8
    LegacyValueJson(event, options).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::type_error&) {
    all_writable = false;
  }
  auto encoded = EncodeEvent(event, options);
  ASSERT_EQ(encoded.ok(), all_writable) << encoded.status().ToString();
  if (!encoded.ok()) {
    EXPECT_NE(encoded.status().message().find("not UTF-8"), std::string::npos) << encoded.status().ToString();
    return;
  }
  ASSERT_EQ(encoded->key, EncodeKey(event));
  ASSERT_EQ(encoded->value, EncodeValue(event, options));
}

void ExpectLikeLegacy(const ChangeEvent& event, const EncodeOptions& options) {
  ASSERT_EQ(EncodeKey(event), LegacyEncodeKey(event));
  ASSERT_EQ(EncodeValue(event, options), LegacyEncodeValue(event, options));
  ExpectEncodeEventAsTheTwo(event, options);
}

TEST(EventEncoderTest, EncodeEventRefusesTextThatIsNotUtf8) {
  ChangeEvent e;
  e.kind = EventKind::kInsert;
  e.db = "d";
  e.collection = "c";
  BSON_APPEND_INT32(e.document_key.mutable_get(), "_id", 1);
  BSON_APPEND_INT32(e.after.emplace().mutable_get(), "_id", 1);
  ASSERT_TRUE(EncodeEvent(e, {}).ok());
  bson_append_utf8(e.after->mutable_get(), "name", -1, "caf\xe9", 4);  // Latin-1, as old apps wrote it
  auto refused = EncodeEvent(e, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not UTF-8"), std::string::npos);
  e.after.emplace();
  BSON_APPEND_INT32(e.after->mutable_get(), "caf\xe9", 1);  // a field name
  EXPECT_FALSE(EncodeEvent(e, {}).ok());
  e.after.reset();
  e.kind = EventKind::kUpdate;
  e.update.emplace().removed_fields = {"caf\xe9"};  // written as U+FFFD, it would clear another column
  EXPECT_FALSE(EncodeEvent(e, {}).ok());
}

TEST(EventEncoderTest, EveryFixtureAsTheLegacyEncoder) {
  int compared = 0;
  for (const auto& f : testing::LoadEventFixtures()) {
    auto raw = f.Get("raw");
    if (!raw) continue;
    std::optional<Namespace> fallback = f.Fallback();
    auto event = FromChangeStreamDocument(raw->get(), fallback ? &*fallback : nullptr);
    if (!event.ok()) continue;
    SCOPED_TRACE(f.name);
    ExpectLikeLegacy(*event, {});
    EncodeOptions options;
    options.server_name = "prod \"eu\"\n\xff";
    options.last_snapshot_record = true;
    options.processed_at_ms = 1733040000123;
    ExpectLikeLegacy(*event, options);
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

class RandomEvents {
 public:
  explicit RandomEvents(uint64_t seed) : bson_(seed) {}

  ChangeEvent Next() {
    ChangeEvent e;
    e.kind = static_cast<EventKind>(bson_.Below(9));
    e.db = Text();
    e.collection = bson_.Chance(0.2) ? "" : Text();
    if (bson_.Chance(0.9)) {
      bson_.Value(e.document_key.mutable_get(), "_id", 3);  // any type, documents with $ names too
      if (bson_.Chance(0.2)) bson_.Value(e.document_key.mutable_get(), "shard", 1);
    }
    if (bson_.Chance(0.7)) e.after = Document();
    if (bson_.Chance(0.3)) e.before = Document();
    if (bson_.Chance(0.4)) {
      UpdateDescription u;
      u.updated_fields = Document();
      for (uint64_t n = bson_.Below(4); n > 0; --n) u.removed_fields.push_back(Text());
      for (uint64_t n = bson_.Below(3); n > 0; --n) u.truncated_arrays.push_back({Text(), bson_.Int64()});
      if (bson_.Chance(0.3)) u.disambiguated_paths = Document();
      e.update = std::move(u);
    }
    e.document_gone = bson_.Chance(0.1);
    e.rename_to_db = Text();
    e.rename_to_collection = Text();
    e.copies = bson_.Chance(0.5) ? 0 : static_cast<int32_t>(bson_.Below(1u << 31));
    e.resume_token = bson_.Chance(0.2) ? "" : Text();
    e.cluster_time_s = bson_.Chance(0.2) ? 0 : static_cast<uint32_t>(bson_.Below(uint64_t{1} << 32));
    e.cluster_time_i = static_cast<uint32_t>(bson_.Below(uint64_t{1} << 32));
    e.wall_time_ms = bson_.Int64();
    if (bson_.Chance(0.3)) e.txn_lsid = Text();
    if (bson_.Chance(0.3)) e.txn_number = bson_.Int64();
    return e;
  }

  EncodeOptions Options() {
    EncodeOptions o;
    if (bson_.Chance(0.5)) o.server_name = Text();
    o.last_snapshot_record = bson_.Chance(0.5);
    o.processed_at_ms = bson_.Chance(0.5) ? 0 : bson_.Int64();
    return o;
  }

 private:
  // Strings the envelope carries as they are: some not UTF-8 (nlohmann replaced those bytes).
  std::string Text() {
    std::string s = bson_.Text(/*nul=*/true);
    if (bson_.Chance(0.05)) s += "\xc3";
    return s;
  }
  BsonDocument Document() {
    BsonDocument d;
    bson_.Document(d.mutable_get(), 8, 4, 0.002);
    return d;
  }

  testing::RandomBson bson_;
};

TEST(EventEncoderTest, RandomEventsAsTheLegacyEncoder) {
  RandomEvents random(20261203);
  for (int i = 0; i < 3000; ++i) {
    SCOPED_TRACE(i);
    ChangeEvent event = random.Next();
    ExpectLikeLegacy(event, random.Options());
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace m2m
