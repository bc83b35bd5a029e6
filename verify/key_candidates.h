// From a key column's text back to the MongoDB values it can have come from, so verify can ask
// MongoDB whether a row's document exists (the "extra row" check).
//
// A key column holds KeyValueFromBson's form of the value (sql_types.h): BIGINT for integers,
// CHAR(24) for ObjectIds, VARBINARY(1024) with the text form of anything else. Text forms are not
// unique (the string "5" and the double 5 both read "5"), so every value whose text form the text
// can be is a candidate; the caller maps what MongoDB returns and keeps only the documents whose key
// really is that text. Types whose text form cannot be read back (regular expressions, JavaScript)
// give no candidate: such a row is reported extra, which docs/verify.md lists as a limitation.
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
