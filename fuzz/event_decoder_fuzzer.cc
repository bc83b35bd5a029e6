// Fuzzes the change-event decoder: a Kafka message (key and value) -> ChangeEvent (DecodeEvent), and a
// raw change-stream event -> ChangeEvent (FromChangeStreamDocument). Input: the message key on the
// first line (an empty first line is a null key), the value after it. Checks, beyond "no crash, no
// sanitizer report": every event either form accepts survives EncodeKey/EncodeValue/DecodeEvent
// unchanged, and every error is kInvalidArgument with a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"

namespace {

void CheckError(const m2m::Status& status, const char* origin) {
  if (status.code() != m2m::StatusCode::kInvalidArgument || status.message().empty()) {
    m2m::fuzz::Fail(origin, "error is not kInvalidArgument with a message: " + status.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t newline = input.find('\n');
  std::optional<std::string_view> key;
  std::string_view value = input;
  if (newline != std::string_view::npos) {
    if (newline > 0) key = input.substr(0, newline);
    value = input.substr(newline + 1);
  }

  auto decoded = m2m::DecodeEvent(key, value);
  if (!decoded.ok()) {
    CheckError(decoded.status(), "DecodeEvent");
  } else if (decoded->has_value()) {
    m2m::fuzz::CheckRoundTrip(**decoded, "DecodeEvent round trip");
  }

  // The same value read as a raw change-stream event, as capture gets it from MongoDB (as BSON).
  auto raw = m2m::BsonDocument::FromJson(value);
  if (raw.ok()) {
    m2m::Namespace fallback{"fuzzdb", "fuzzcoll"};
    auto event = m2m::FromChangeStreamDocument(raw->get(), key ? &fallback : nullptr);
    if (!event.ok()) {
      CheckError(event.status(), "FromChangeStreamDocument");
    } else {
      m2m::fuzz::CheckRoundTrip(*event, "FromChangeStreamDocument round trip");
    }
  }
  return 0;
}
