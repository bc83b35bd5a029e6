// Fuzzes the canonical Extended JSON writer (ejson::AppendCanonical, extended_json_writer.cc)
// against libbson's bson_as_canonical_extended_json, which it replaces byte for byte. Input: BSON
// bytes (the first 4 bytes are overwritten with the input's length and the last with the end
// mark, so that most inputs are documents to walk), and the same input read as Extended JSON text.
// Checks, beyond "no crash, no sanitizer report":
// - a document the reference copies exactly (CopiesExactly, canonical_json_testing.h): the writer's
//   text, in both spellings, and each field's value are the reference's (the escape, then libbson),
//   or neither has one;
// - another without $ names (before the damage): the text is libbson's own, or neither has one;
// - AppendJsonString writes the input as nlohmann::json's dump does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "canonical_json_testing.h"
#include "fuzz_check.h"

namespace {

using m2m::ejson::Spelling;

std::string Show(const std::optional<std::string>& text) { return text ? *text : "(none)"; }

void Compare(const char* what, const std::optional<std::string>& expected, bool ok, const std::string& got) {
  if (ok != expected.has_value() || (ok && got != *expected)) {
    m2m::fuzz::Fail(what, "libbson: " + Show(expected) + "\nwriter:  " + (ok ? got : "(none)"));
  }
}

void CheckDocument(const bson_t* doc) {
  std::string text, quoted;
  const bool ok = m2m::ejson::AppendCanonical(doc, Spelling::kText, text);
  const bool quoted_ok = m2m::ejson::AppendCanonical(doc, Spelling::kJsonString, quoted);
  if (m2m::testing::CopiesExactly(doc)) {
    const std::optional<std::string> expected = m2m::testing::LibbsonCanonical(doc);
    Compare("document", expected, ok, text);
    Compare("document as JSON string content",
            expected ? std::optional(m2m::testing::NlohmannStringContent(*expected)) : std::nullopt, quoted_ok, quoted);
    bson_iter_t it;
    if (!bson_iter_init(&it, doc)) return;
    while (bson_iter_next(&it)) {
      std::string value;
      const bool value_ok = m2m::ejson::AppendCanonicalValue(&it, Spelling::kText, value);
      Compare("field value", m2m::testing::LibbsonCanonicalValue(&it), value_ok, value);
    }
  } else if (!m2m::testing::NeedsEscape(doc)) {
    Compare("corrupt document", m2m::testing::TakeLibbsonJson(bson_as_canonical_extended_json(doc, nullptr)), ok,
            text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string json_string;
  m2m::ejson::AppendJsonString(input, json_string);
  const std::string expected =
      nlohmann::json(std::string(input)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (json_string != expected) m2m::fuzz::Fail("AppendJsonString", json_string + "\n" + expected);

  if (size >= 5) {
    std::string bytes(input);
    const auto n = static_cast<uint32_t>(size);
    bytes[0] = static_cast<char>(n);
    bytes[1] = static_cast<char>(n >> 8);
    bytes[2] = static_cast<char>(n >> 16);
    bytes[3] = static_cast<char>(n >> 24);
    bytes.back() = '\0';
    bson_t doc;
    if (bson_init_static(&doc, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) CheckDocument(&doc);
  }
  auto parsed = m2m::BsonDocument::FromJson(input);
  if (parsed.ok()) CheckDocument(parsed->get());
  return 0;
}
