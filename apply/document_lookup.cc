#include "document_lookup.h"

#include <mongoc/mongoc.h>

#include "mongo_error.h"

namespace m2m::apply {

Result<std::unique_ptr<DocumentLookup>> DocumentLookup::Connect(const MongoOptions& options) {
  M2M_ASSIGN_OR_RETURN(auto client, MongoClient::Connect(options));
  return std::unique_ptr<DocumentLookup>(new DocumentLookup(std::move(client)));
}

Result<std::optional<BsonDocument>> DocumentLookup::Find(const std::string& db, const std::string& collection,
                                                         const BsonDocument& document_key) {
  auto* mc = static_cast<mongoc_client_t*>(client_->native_handle());
  mongoc_collection_t* coll = mongoc_client_get_collection(mc, db.c_str(), collection.c_str());
  bson_t opts = BSON_INITIALIZER;
  BSON_APPEND_INT64(&opts, "limit", 1);
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll, document_key.get(), &opts, nullptr);
  const bson_t* doc = nullptr;
  std::optional<BsonDocument> found;
  if (mongoc_cursor_next(cursor, &doc)) found.emplace(doc);
  bson_error_t error;
  const bson_t* reply = nullptr;
  Status st;
  if (mongoc_cursor_error_document(cursor, &error, &reply)) {
    st = MongoStatus(error, "looking up " + db + "." + collection + " " + document_key.ToRelaxedJson(), reply);
  }
  mongoc_cursor_destroy(cursor);
  bson_destroy(&opts);
  mongoc_collection_destroy(coll);
  if (!st.ok()) return st;
  return found;
}

}  // namespace m2m::apply
