// Internal: turns libmongoc errors into Status.
#pragma once

#include <bson/bson.h>

#include <string_view>

#include "m2m/status.h"

namespace m2m {

// `reply` (may be null) is the server's reply, whose errorLabels say whether a retry may succeed.
Status MongoStatus(const bson_error_t& error, std::string_view what, const bson_t* reply = nullptr);

}  // namespace m2m
