#include "dead_letter.h"

#include <nlohmann/json.hpp>

#include "m2m/bson_document.h"

namespace m2m::capture {
namespace {

using ordered_json = nlohmann::ordered_json;

std::string Base64(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    uint32_t n = uint32_t{data[i]} << 16;
    if (i + 1 < size) n |= uint32_t{data[i + 1]} << 8;
    if (i + 2 < size) n |= data[i + 2];
    out += kDigits[(n >> 18) & 63];
    out += kDigits[(n >> 12) & 63];
    out += i + 1 < size ? kDigits[(n >> 6) & 63] : '=';
    out += i + 2 < size ? kDigits[n & 63] : '=';
  }
  return out;
}

// Strict dumping throws on text that is not UTF-8 (a reason quoting a field name of a malformed
// event); the event itself is libbson's UTF-8 output or base64, which nothing replaces.
std::string Dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

}  // namespace

Result<std::string> DeadLetterRecord(const bson_t* raw, const DeadLetter& letter, size_t max_bytes) {
  ordered_json record = {{"reason", letter.reason},
                         {"topic", letter.topic},
                         {"capture", letter.capture},
                         {"at_ms", letter.at_ms}};
  bson_iter_t it;
  if (bson_iter_init_find(&it, raw, "_id") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
    const uint8_t* data;
    uint32_t len;
    bson_iter_document(&it, &len, &data);
    auto token = BsonDocument::FromBytes(data, len);
    if (token.ok()) record["resume_token"] = token->ToCanonicalJson();
  }
  record["event_bytes"] = raw->len;
  // libbson writes no Extended JSON (an empty string here) for a string that is not UTF-8.
  std::string event_json = BsonDocument(raw).ToCanonicalJson();
  if (!event_json.empty()) {
    record["event"] = std::move(event_json);
    std::string text = Dump(record);
    if (text.size() <= max_bytes) return text;
    record.erase("event");
  }
  record["event_bson"] = Base64(bson_get_data(raw), raw->len);
  std::string text = Dump(record);
  if (text.size() <= max_bytes) return text;
  return Status::Invalid("a dead-letter record of " + std::to_string(text.size()) + " bytes (an event of " +
                         std::to_string(raw->len) + " bytes of BSON) does not fit in " + std::to_string(max_bytes) +
                         " bytes; raise capture's --max-message-bytes above " + std::to_string(text.size()));
}

}  // namespace m2m::capture
