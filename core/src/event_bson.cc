#include "event_bson.h"

#include "extended_json.h"

namespace m2m::event_internal {

BsonDocument SubDocument(const bson_iter_t* it) {
  uint32_t length = 0;
  const uint8_t* data = nullptr;
  if (BSON_ITER_HOLDS_ARRAY(it)) {
    bson_iter_array(it, &length, &data);
  } else {
    bson_iter_document(it, &length, &data);
  }
  bson_t view;
  if (data == nullptr || !bson_init_static(&view, data, length)) return BsonDocument();
  return BsonDocument(&view);
}

std::string_view BsonTypeName(bson_type_t type) {
  switch (type) {
    case BSON_TYPE_DOUBLE: return "double";
    case BSON_TYPE_UTF8: return "string";
    case BSON_TYPE_DOCUMENT: return "document";
    case BSON_TYPE_ARRAY: return "array";
    case BSON_TYPE_BINARY: return "binary";
    case BSON_TYPE_UNDEFINED: return "undefined";
    case BSON_TYPE_OID: return "objectId";
    case BSON_TYPE_BOOL: return "bool";
    case BSON_TYPE_DATE_TIME: return "date";
    case BSON_TYPE_NULL: return "null";
    case BSON_TYPE_REGEX: return "regex";
    case BSON_TYPE_DBPOINTER: return "dbPointer";
    case BSON_TYPE_CODE: return "javascript";
    case BSON_TYPE_SYMBOL: return "symbol";
    case BSON_TYPE_CODEWSCOPE: return "javascriptWithScope";
    case BSON_TYPE_INT32: return "int32";
    case BSON_TYPE_TIMESTAMP: return "timestamp";
    case BSON_TYPE_INT64: return "int64";
    case BSON_TYPE_DECIMAL128: return "decimal128";
    case BSON_TYPE_MAXKEY: return "maxKey";
    case BSON_TYPE_MINKEY: return "minKey";
    default: return "unknown BSON type";
  }
}

std::string ValueToCanonicalJson(const bson_iter_t* it) {
  std::string json;
  ejson::AppendCanonicalValue(it, ejson::Spelling::kText, json);
  return json;
}

}  // namespace m2m::event_internal
