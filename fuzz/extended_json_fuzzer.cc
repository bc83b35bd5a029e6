// Fuzzes the Extended JSON reader (BsonDocument::FromJson) and the BSON bytes reader (FromBytes).
// Events carry documents as canonical Extended JSON (docs/events.md), so beyond "no crash, no
// sanitizer report" it checks the codec's promise: any document read back from its canonical form is
// bit-identical (bson_equal). The relaxed form is only written (messages, JSON column values), never
// read back, and libbson cannot read all of it (a date after 9999 comes out as an ISO string its own
// parser rejects), so it is produced but not parsed.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"

namespace {

void CheckCanonicalRoundTrip(const m2m::BsonDocument& doc, const char* origin) {
  std::string canonical = doc.ToCanonicalJson();
  auto again = m2m::BsonDocument::FromJson(canonical);
  if (!again.ok()) m2m::fuzz::Fail(origin, "canonical form does not parse: " + again.status().ToString() + "\n" + canonical);
  if (!(*again == doc)) m2m::fuzz::Fail(origin, "canonical form reads back different\n" + canonical + "\n" + again->ToCanonicalJson());
  if (doc.ToRelaxedJson().empty()) m2m::fuzz::Fail(origin, "no relaxed form\n" + canonical);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto doc = m2m::BsonDocument::FromJson(std::string_view(reinterpret_cast<const char*>(data), size));
  if (doc.ok()) CheckCanonicalRoundTrip(*doc, "FromJson");
  auto bytes = m2m::BsonDocument::FromBytes(data, size);
  if (bytes.ok()) CheckCanonicalRoundTrip(*bytes, "FromBytes");
  return 0;
}
