#include "m2m/bson_document.h"

#include "extended_json.h"

namespace m2m {

BsonDocument::BsonDocument() { bson_init(&doc_); }

BsonDocument::BsonDocument(const bson_t* doc) { bson_copy_to(doc, &doc_); }

BsonDocument::BsonDocument(const BsonDocument& other) { bson_copy_to(&other.doc_, &doc_); }

BsonDocument& BsonDocument::operator=(const BsonDocument& other) {
  if (this != &other) {
    bson_destroy(&doc_);
    bson_copy_to(&other.doc_, &doc_);
  }
  return *this;
}

// bson_t may keep its bytes inline, so a move is a copy of the bytes followed by a reset of the source.
BsonDocument::BsonDocument(BsonDocument&& other) noexcept {
  bson_steal(&doc_, &other.doc_);
  bson_init(&other.doc_);
}

BsonDocument& BsonDocument::operator=(BsonDocument&& other) noexcept {
  if (this != &other) {
    bson_destroy(&doc_);
    bson_steal(&doc_, &other.doc_);
    bson_init(&other.doc_);
  }
  return *this;
}

BsonDocument::~BsonDocument() { bson_destroy(&doc_); }

Result<BsonDocument> BsonDocument::FromJson(std::string_view json) {
  BsonDocument out;
  // libbson's reader is about twice as fast and reads the same documents the same way, but it stops
  // at 100 levels, refuses objects that are not exactly a valid type wrapper and knows nothing of
  // the escape: whatever it cannot read exactly goes to ours (extended_json.h).
  const size_t first = json.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && json[first] == '{' && json.find(ejson::kEscapeKey) == std::string_view::npos) {
    bson_destroy(&out.doc_);
    if (bson_init_from_json(&out.doc_, json.data(), static_cast<ssize_t>(json.size()), nullptr)) return out;
    bson_init(&out.doc_);
  }
  M2M_RETURN_NOT_OK(ejson::Parse(json, &out.doc_));
  return out;
}

Result<BsonDocument> BsonDocument::FromBytes(const uint8_t* data, size_t length) {
  bson_t view;
  if (!bson_init_static(&view, data, length)) return Status::Invalid("invalid BSON document bytes");
  size_t offset = 0;
  if (!bson_validate(&view, BSON_VALIDATE_NONE, &offset)) {
    return Status::Invalid("invalid BSON document: corrupt at byte " + std::to_string(offset));
  }
  return BsonDocument(&view);
}

std::string BsonDocument::ToCanonicalJson() const {
  std::string out;
  ejson::AppendCanonical(&doc_, ejson::Spelling::kText, out);  // nothing on failure, as libbson's NULL
  return out;
}

std::string BsonDocument::ToRelaxedJson() const {
  char* json = bson_as_relaxed_extended_json(&doc_, nullptr);
  if (json == nullptr) return {};
  std::string out(json);
  bson_free(json);
  return out;
}

}  // namespace m2m
