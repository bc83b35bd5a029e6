// Internal to BsonDocument and the event codec: the Extended JSON reader, the canonical writer, and
// the escape that makes the canonical form lossless for documents with $-prefixed field names
// (docs/events.md, "Field names starting with $").
//
// Extended JSON spells typed values as objects with $-prefixed keys ({"$numberLong": "5"}), and
// MongoDB 5.0+ stores documents whose field names start with $, so {"sub": {"$numberLong": "5"}} is
// either a sub-document or an int64: the format has no escape (DRIVERS-3456). The writer therefore
// wraps every embedded document that has a $-prefixed field name as {"$m2mDocument": {…}}, whose
// content the reader takes literally. The reader follows the Extended JSON specification's parser
// rules otherwise: a nested object is a typed value only when its keys are exactly a valid type
// wrapper; any other object is a document (so events written before the escape, whose documents
// held such names, still read back whenever their keys are not a valid wrapper).
//
// The reader has its own depth limit (kMaxJsonDepth), well above MongoDB's 100 levels of nesting plus
// the type wrappers and escapes, instead of libbson's 100 JSON levels, which a 99-level document with
// a number at the bottom already passes.
//
// Thread safety: pure functions.
#pragma once

#include <bson/bson.h>

#include <string>
#include <string_view>

#include "m2m/status.h"

namespace m2m::ejson {

// The key of the escape wrapper.
inline constexpr std::string_view kEscapeKey = "$m2mDocument";
// JSON nesting the reader accepts (objects and arrays, type wrappers included).
inline constexpr int kMaxJsonDepth = 512;

// Parses canonical, relaxed or legacy (v1) Extended JSON, or plain JSON, into `out` (initialized
// by the caller). The text must be one JSON object.
Status Parse(std::string_view json, bson_t* out);

// How the writers below spell their text.
enum class Spelling {
  kText,        // the Extended JSON itself
  kJsonString,  // the content of a JSON string holding it (quotes not included): every " and \ of the
                // text preceded by a \, as a JSON writer escapes the string; the event envelope embeds
                // documents this way without a second pass over them
};

// Appends the canonical Extended JSON v2 of `doc`, each embedded document (at any depth, array
// elements too, but not inside a code-with-scope's scope) that has a field name starting with $
// wrapped as {"$m2mDocument": {…}}. The text is
// byte for byte what libbson 1.x's bson_as_canonical_extended_json writes for the document so
// wrapped (spacing, "%.20g" doubles, escapes, "{ ... }" below 200 levels), which messages have
// always carried: the message key's bytes decide Kafka partitioning. Returns false, leaving `out` as
// it was, where libbson returns NULL: a string, field name, code or regular expression that is not
// UTF-8 (or spells NUL as C0 80), or corrupt BSON.
bool AppendCanonical(const bson_t* doc, Spelling spelling, std::string& out);
// The same for the single value `it` points at, spelled as the value of a document's field (a
// document with $ names is wrapped).
bool AppendCanonicalValue(const bson_iter_t* it, Spelling spelling, std::string& out);

// Appends `text` as a JSON string, quotes included, exactly as nlohmann::json's dump with
// error_handler_t::replace and ensure_ascii off writes it: " \ and control characters escaped
// (\b \f \n \r \t, else \u00xx), other bytes as they are, each maximal ill-formed UTF-8 part replaced
// by U+FFFD. Returns false when it replaced any (the text was not UTF-8 throughout).
bool AppendJsonString(std::string_view text, std::string& out);

}  // namespace m2m::ejson
