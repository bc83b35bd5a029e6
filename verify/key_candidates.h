// From a key column's text back to the MongoDB values it can have come from, so verify can ask
// MongoDB whether a row's document exists (the "extra row" check).
//
// A key column holds KeyValueFromBson's form of the value (sql_types.h): BIGINT for integers,
// CHAR(24) for ObjectIds, VARBINARY(1024) with KeyTextOf for anything else (a cut and hashed one is
// read from the key's full-value column instead). MongoDB matches numbers by value, and a text may
// read as more than one type, so every value the text can be is a candidate; the caller maps what
// MongoDB returns and keeps only the documents whose key really is that text.
//
// Thread safety: pure functions.
#pragma once

#include <string_view>
#include <vector>

#include "m2m/bson_document.h"
#include "m2m/sql_types.h"

namespace m2m::verify {

// The candidate values of a key column of type `column` holding `text`, each as {"v": <value>}.
std::vector<BsonDocument> KeyCandidates(std::string_view text, SqlType column);

}  // namespace m2m::verify
