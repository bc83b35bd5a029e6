// Test-only: the recorded change-stream events in tests/fixtures/change_events/ (README.md there
// describes the file format) and a field-by-field comparison of ChangeEvents.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "event_bson.h"
#include "m2m/change_event.h"
#include "m2m/event_codec.h"
#include "test_source_dir.h"

namespace m2m::testing {

struct EventFixture {
  std::string name;  // file name without .json
  BsonDocument file;

  // The sub-document `key` of the file, or nullopt.
  std::optional<BsonDocument> Get(const char* key) const {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, file.get(), key) || BSON_ITER_HOLDS_NULL(&it)) return std::nullopt;
    return event_internal::SubDocument(&it);
  }
  std::string GetString(const char* key) const {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, file.get(), key) || !BSON_ITER_HOLDS_UTF8(&it)) return {};
    return bson_iter_utf8(&it, nullptr);
  }
  std::optional<Namespace> Fallback() const {
    auto doc = Get("fallback");
    if (!doc) return std::nullopt;
    bson_iter_t db, coll;
    bson_iter_init_find(&db, doc->get(), "db");
    bson_iter_init_find(&coll, doc->get(), "coll");
    return Namespace{bson_iter_utf8(&db, nullptr), bson_iter_utf8(&coll, nullptr)};
  }
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline std::filesystem::path FixtureDir() {
  return std::filesystem::path(kSourceDir) / "tests" / "fixtures" / "change_events";
}

// Every fixture, sorted by name; a file that does not parse fails the calling test.
inline std::vector<EventFixture> LoadEventFixtures() {
  std::vector<EventFixture> out;
  for (const auto& entry : std::filesystem::directory_iterator(FixtureDir())) {
    if (entry.path().extension() != ".json") continue;
    auto doc = BsonDocument::FromJson(ReadFile(entry.path()));
    EXPECT_TRUE(doc.ok()) << entry.path() << ": " << doc.status().ToString();
    if (doc.ok()) out.push_back({entry.path().stem().string(), std::move(*doc)});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

inline std::string Show(const std::optional<BsonDocument>& doc) {
  return doc ? doc->ToCanonicalJson() : "(none)";
}

// Builds the ChangeEvent a fixture's "expected" block describes.
inline ChangeEvent ExpectedEvent(const bson_t* expected) {
  ChangeEvent e;
  bson_iter_t it;
  auto sub = [](const bson_iter_t* i) { return event_internal::SubDocument(i); };
  bson_iter_init(&it, expected);
  while (bson_iter_next(&it)) {
    std::string key = bson_iter_key(&it);
    if (key == "kind") {
      e.kind = *ParseEventKind(bson_iter_utf8(&it, nullptr));
    } else if (key == "db") {
      e.db = bson_iter_utf8(&it, nullptr);
    } else if (key == "collection") {
      e.collection = bson_iter_utf8(&it, nullptr);
    } else if (key == "document_key") {
      e.document_key = sub(&it);
    } else if (key == "after") {
      e.after = sub(&it);
    } else if (key == "before") {
      e.before = sub(&it);
    } else if (key == "resume_token") {
      e.resume_token = sub(&it).ToCanonicalJson();
    } else if (key == "cluster_time") {
      bson_iter_timestamp(&it, &e.cluster_time_s, &e.cluster_time_i);
    } else if (key == "wall_time_ms") {
      e.wall_time_ms = bson_iter_as_int64(&it);
    } else if (key == "lsid") {
      e.txn_lsid = sub(&it).ToCanonicalJson();
    } else if (key == "txn_number") {
      e.txn_number = bson_iter_as_int64(&it);
    } else if (key == "rename_to") {
      bson_iter_t f;
      bson_iter_recurse(&it, &f);
      while (bson_iter_next(&f)) {
        (std::string(bson_iter_key(&f)) == "db" ? e.rename_to_db : e.rename_to_collection) =
            bson_iter_utf8(&f, nullptr);
      }
    } else if (key == "update") {
      UpdateDescription u;
      bson_iter_t f;
      bson_iter_recurse(&it, &f);
      while (bson_iter_next(&f)) {
        std::string field = bson_iter_key(&f);
        if (field == "updated_fields") u.updated_fields = sub(&f);
        if (field == "disambiguated_paths") u.disambiguated_paths = sub(&f);
        bson_iter_t items;
        if (field == "removed_fields" && bson_iter_recurse(&f, &items)) {
          while (bson_iter_next(&items)) u.removed_fields.emplace_back(bson_iter_utf8(&items, nullptr));
        }
        if (field == "truncated_arrays" && bson_iter_recurse(&f, &items)) {
          while (bson_iter_next(&items)) {
            BsonDocument entry = sub(&items);
            bson_iter_t name, size;
            bson_iter_init_find(&name, entry.get(), "field");
            bson_iter_init_find(&size, entry.get(), "new_size");
            u.truncated_arrays.push_back({bson_iter_utf8(&name, nullptr), bson_iter_as_int64(&size)});
          }
        }
      }
      e.update = std::move(u);
    } else {
      ADD_FAILURE() << "unknown key in expected: " << key;
    }
  }
  return e;
}

// Compares every field; documents with bson_equal (byte equality, so -0.0, NaN payloads and
// int32 vs int64 all count).
inline void ExpectSameEvent(const ChangeEvent& actual, const ChangeEvent& expected) {
  EXPECT_EQ(EventKindName(actual.kind), EventKindName(expected.kind));
  EXPECT_EQ(actual.db, expected.db);
  EXPECT_EQ(actual.collection, expected.collection);
  EXPECT_TRUE(actual.document_key == expected.document_key)
      << actual.document_key.ToCanonicalJson() << " vs " << expected.document_key.ToCanonicalJson();
  EXPECT_TRUE(actual.after == expected.after) << Show(actual.after) << " vs " << Show(expected.after);
  EXPECT_TRUE(actual.before == expected.before) << Show(actual.before) << " vs " << Show(expected.before);
  ASSERT_EQ(actual.update.has_value(), expected.update.has_value());
  if (actual.update) {
    const UpdateDescription& a = *actual.update;
    const UpdateDescription& b = *expected.update;
    EXPECT_TRUE(a.updated_fields == b.updated_fields)
        << a.updated_fields.ToCanonicalJson() << " vs " << b.updated_fields.ToCanonicalJson();
    EXPECT_EQ(a.removed_fields, b.removed_fields);
    ASSERT_EQ(a.truncated_arrays.size(), b.truncated_arrays.size());
    for (size_t i = 0; i < a.truncated_arrays.size(); ++i) {
      EXPECT_EQ(a.truncated_arrays[i].field, b.truncated_arrays[i].field);
      EXPECT_EQ(a.truncated_arrays[i].new_size, b.truncated_arrays[i].new_size);
    }
    EXPECT_TRUE(a.disambiguated_paths == b.disambiguated_paths)
        << a.disambiguated_paths.ToCanonicalJson() << " vs " << b.disambiguated_paths.ToCanonicalJson();
  }
  EXPECT_EQ(actual.document_gone, expected.document_gone);
  EXPECT_EQ(actual.rename_to_db, expected.rename_to_db);
  EXPECT_EQ(actual.rename_to_collection, expected.rename_to_collection);
  EXPECT_EQ(actual.copies, expected.copies);
  EXPECT_EQ(actual.resume_token, expected.resume_token);
  EXPECT_EQ(actual.cluster_time_s, expected.cluster_time_s);
  EXPECT_EQ(actual.cluster_time_i, expected.cluster_time_i);
  EXPECT_EQ(actual.wall_time_ms, expected.wall_time_ms);
  EXPECT_EQ(actual.txn_lsid, expected.txn_lsid);
  EXPECT_EQ(actual.txn_number, expected.txn_number);
}

}  // namespace m2m::testing
