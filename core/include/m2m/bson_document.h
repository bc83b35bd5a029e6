// BsonDocument: an owning, movable BSON document (a bson_t), and its Extended JSON forms.
//
// Events carry documents as Extended JSON strings (docs/events.md); the core converts them to BSON
// once and works on BSON from there, because only BSON keeps every type (Decimal128, int64 vs int32,
// binary subtypes, dates) without loss.
//
// Thread safety: a value type; distinct objects may be used from distinct threads.
#pragma once

#include <bson/bson.h>

#include <string>
#include <string_view>

#include "m2m/status.h"

namespace m2m {

class BsonDocument {
 public:
  BsonDocument();  // empty document {}
  // Copies `doc`.
  explicit BsonDocument(const bson_t* doc);
  BsonDocument(const BsonDocument& other);
  BsonDocument& operator=(const BsonDocument& other);
  BsonDocument(BsonDocument&& other) noexcept;
  BsonDocument& operator=(BsonDocument&& other) noexcept;
  ~BsonDocument();

  // Parses canonical or relaxed Extended JSON (v2), legacy Extended JSON (v1), or plain JSON; must
  // be a JSON object. A nested object is a typed value only when its keys are exactly a valid type
  // wrapper, else a document; {"$m2mDocument": {…}} is the document {…}, its keys taken as names
  // (ToCanonicalJson's escape).
  static Result<BsonDocument> FromJson(std::string_view json);
  // Copies raw BSON bytes; they must form one valid document.
  static Result<BsonDocument> FromBytes(const uint8_t* data, size_t length);

  // Canonical Extended JSON v2: lossless ({"$numberInt": "1"}, {"$date": {"$numberLong": "…"}}).
  // An embedded document with a field name starting with $ is written as {"$m2mDocument": {…}}:
  // Extended JSON has no other way to tell {"$numberLong": "5"} the document from the int64
  // (docs/events.md, "Field names starting with $"). FromJson reads it back exactly.
  std::string ToCanonicalJson() const;
  // Relaxed Extended JSON v2: readable for people (1, {"$date": "2024-01-01T00:00:00Z"}).
  std::string ToRelaxedJson() const;

  const bson_t* get() const { return &doc_; }
  bson_t* mutable_get() { return &doc_; }
  bool empty() const { return bson_count_keys(&doc_) == 0; }

  friend bool operator==(const BsonDocument& a, const BsonDocument& b) {
    return bson_equal(&a.doc_, &b.doc_);
  }

 private:
  bson_t doc_;
};

}  // namespace m2m
