// Internal to BsonDocument: the Extended JSON reader and the escape that makes the canonical writer
// lossless for documents with $-prefixed field names (docs/events.md, "Field names starting with $").
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

// Whether some embedded document (at any depth, array elements included) of `doc` has a field name
// starting with $, so that its canonical Extended JSON needs the escape.
bool NeedsEscape(const bson_t* doc);
// A copy of `doc` with each such embedded document replaced by {"$m2mDocument": <it>} (its own
// embedded documents escaped the same way).
void Escape(const bson_t* doc, bson_t* out);

}  // namespace m2m::ejson
