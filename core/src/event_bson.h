// Internal to the event codec: small libbson helpers shared by its files.
#pragma once

#include <bson/bson.h>

#include <string>
#include <string_view>

#include "m2m/bson_document.h"

namespace m2m::event_internal {

// The embedded document or array `it` points at, copied. `it` must hold one of the two.
BsonDocument SubDocument(const bson_iter_t* it);

// "string", "int32", "document", ... for error messages.
std::string_view BsonTypeName(bson_type_t type);

// Canonical Extended JSON of the single value `it` points at, e.g. {"$oid":"..."} or "abc".
std::string ValueToCanonicalJson(const bson_iter_t* it);

}  // namespace m2m::event_internal
