#include "dead_letter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "m2m/bson_document.h"

namespace m2m::capture {
namespace {

using nlohmann::json;

std::string FromBase64(const std::string& text) {
  static const std::string kDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    bits = (bits << 6) | static_cast<uint32_t>(kDigits.find(c));
    if ((count += 6) >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

// A change event as MongoDB sends it, with a resume token and `text` in its full document.
BsonDocument Event(const std::string& text) {
  BsonDocument event = BsonDocument::FromJson(R"({"_id": {"_data": "8264F1"}, "operationType": "insert",
      "ns": {"db": "d", "coll": "c"}, "documentKey": {"_id": 1}})").value();
  bson_t full;
  bson_append_document_begin(event.mutable_get(), "fullDocument", -1, &full);
  bson_append_int32(&full, "_id", -1, 1);
  bson_append_utf8(&full, "text", -1, text.data(), static_cast<int>(text.size()));
  bson_append_document_end(event.mutable_get(), &full);
  return event;
}

const DeadLetter kLetter{"too large", "m2m.d.c", "cap", 1700000000000};

TEST(DeadLetterRecordTest, AnEventOfMultiByteCharactersIsKeptWholeAsExtendedJson) {
  // Cut at any fixed byte count, this text would end inside a character (the record used to keep
  // half the limit, and dumping the cut text threw).
  std::string text;
  while (text.size() < 3'000'001) text += "h\xC3\xA9llo \xE2\x9C\x93 ";
  BsonDocument event = Event(text);
  auto record = DeadLetterRecord(event.get(), kLetter, size_t{80} << 20);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  json r = json::parse(*record);
  EXPECT_EQ(r["reason"], "too large");
  EXPECT_EQ(r["topic"], "m2m.d.c");
  EXPECT_EQ(r["resume_token"], R"({ "_data" : "8264F1" })");
  EXPECT_EQ(r["event_bytes"], event.get()->len);
  EXPECT_FALSE(r.contains("event_bson"));
  auto back = BsonDocument::FromJson(r["event"].get<std::string>());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back.value() == event);
}

TEST(DeadLetterRecordTest, AStringThatIsNotUtf8KeepsEveryByteAsBase64Bson) {
  BsonDocument event = Event(std::string("ab\xC3", 3));
  auto record = DeadLetterRecord(event.get(), {"bad \xFF reason", "", "cap", 1}, 1 << 20);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  json r = json::parse(*record);
  EXPECT_FALSE(r.contains("event"));
  std::string bytes = FromBase64(r["event_bson"]);
  EXPECT_EQ(bytes, std::string(reinterpret_cast<const char*>(bson_get_data(event.get())), event.get()->len));
  EXPECT_EQ(r["reason"], "bad \xEF\xBF\xBD reason");  // the stray byte of the reason is replaced
}

TEST(DeadLetterRecordTest, AnEventWhoseExtendedJsonIsTooLargeGoesAsBase64AndBeyondThatIsAnError) {
  // Escapes make the Extended JSON of control characters six to seven times the BSON.
  BsonDocument event = Event(std::string(100'000, '\x01'));
  auto whole = DeadLetterRecord(event.get(), kLetter, 1 << 20);
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(json::parse(*whole).contains("event"));
  ASSERT_GT(whole->size(), 600'000u);

  auto record = DeadLetterRecord(event.get(), kLetter, 200'000);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_LE(record->size(), 200'000u);
  json r = json::parse(*record);
  EXPECT_FALSE(r.contains("event"));
  EXPECT_EQ(FromBase64(r["event_bson"]),
            std::string(reinterpret_cast<const char*>(bson_get_data(event.get())), event.get()->len));

  auto refused = DeadLetterRecord(event.get(), kLetter, 100'000);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--max-message-bytes"), std::string::npos);
}

}  // namespace
}  // namespace m2m::capture
