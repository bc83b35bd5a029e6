// Fetching a document's current state from MongoDB, for updates whose delta the mapping cannot apply
// column by column (Batch::NeedsFullDocument).
//
// Thread safety: a DocumentLookup is used by one thread (it owns a MongoClient).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "m2m/bson_document.h"
#include "m2m/mongo_client.h"
#include "m2m/status.h"

namespace m2m::apply {

class DocumentLookup {
 public:
  static Result<std::unique_ptr<DocumentLookup>> Connect(const MongoOptions& options);

  // The document of db.collection matching `document_key` ({_id, and the shard key when sharded}), or
  // nullopt when it no longer exists. Reads the primary (the client's default read preference), so
  // the document is at least as new as any change apply has consumed.
  Result<std::optional<BsonDocument>> Find(const std::string& db, const std::string& collection,
                                           const BsonDocument& document_key);

 private:
  explicit DocumentLookup(std::unique_ptr<MongoClient> client) : client_(std::move(client)) {}
  std::unique_ptr<MongoClient> client_;
};

}  // namespace m2m::apply
