// ChangeEvent <-> Kafka key/value JSON (docs/events.md), and decoding of Debezium MongoDB events.
#include <fmt/format.h>

#include <array>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "event_bson.h"
#include "extended_json.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

using json = nlohmann::json;

// source.version: identifies the producer, not a Debezium release.
constexpr const char* kSourceVersion = "mongo2mysql/1";

constexpr std::array<std::string_view, 9> kKindNames = {
    "read", "insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"};

// Debezium's op for each kind. Collection-level events get "m", Debezium's code for an event that
// changes no row (its SMTs pass such records through, sinks that dispatch on c/u/d/r skip them).
std::string_view OpCode(EventKind kind) {
  switch (kind) {
    case EventKind::kRead: return "r";
    case EventKind::kInsert: return "c";
    case EventKind::kUpdate:
    case EventKind::kReplace: return "u";
    case EventKind::kDelete: return "d";
    default: return "m";
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding: straight from the event's fields and BSON into one string, in the spelling messages
// have always had, nlohmann::ordered_json's compact dump (no spaces, fields in the order below,
// strings escaped as ejson::AppendJsonString does): consumers may compare bytes.

class ValueWriter {
 public:
  explicit ValueWriter(size_t reserve) { out_.reserve(reserve); }

  std::string Take() { return std::move(out_); }
  // False once a document or value had text that is not UTF-8 (written as "": it has no JSON form),
  // or a string did (written with U+FFFD for the bad bytes: a removed field's name would be another).
  bool all_utf8() const { return all_utf8_; }

  void BeginObject() {
    Separate();
    out_.push_back('{');
    first_ = true;
  }
  void EndObject() {
    out_.push_back('}');
    first_ = false;
  }
  void BeginArray() {
    Separate();
    out_.push_back('[');
    first_ = true;
  }
  void EndArray() {
    out_.push_back(']');
    first_ = false;
  }
  // `name` is one of ours: plain ASCII, nothing to escape.
  ValueWriter& Field(std::string_view name) {
    Separate();
    out_.push_back('"');
    out_.append(name);
    out_.append("\":");
    first_ = true;  // the value follows without a comma
    return *this;
  }
  void Null() {
    Separate();
    out_.append("null");
  }
  void Bool(bool b) {
    Separate();
    out_.append(b ? "true" : "false");
  }
  template <typename T>
  void Number(T n) {
    Separate();
    char text[24];
    auto r = std::to_chars(text, text + sizeof text, n);
    out_.append(text, static_cast<size_t>(r.ptr - text));
  }
  void String(std::string_view s) {
    Separate();
    all_utf8_ &= ejson::AppendJsonString(s, out_);
  }
  void OptionalString(const std::optional<std::string>& s) { s ? String(*s) : Null(); }
  // Empty is null (a collection-level event's collection).
  void TextOrNull(const std::string& s) { s.empty() ? Null() : String(s); }
  // A document as its canonical Extended JSON in a string; "" when it has none (ToCanonicalJson).
  void Document(const BsonDocument& doc) {
    Separate();
    out_.push_back('"');
    all_utf8_ &= ejson::AppendCanonical(doc.get(), ejson::Spelling::kJsonString, out_);
    out_.push_back('"');
  }
  void OptionalDocument(const std::optional<BsonDocument>& doc) { doc ? Document(*doc) : Null(); }
  // The value `it` points at, as its canonical Extended JSON in a string.
  void Value(const bson_iter_t* it) {
    Separate();
    out_.push_back('"');
    all_utf8_ &= ejson::AppendCanonicalValue(it, ejson::Spelling::kJsonString, out_);
    out_.push_back('"');
  }

 private:
  void Separate() {
    if (!first_) out_.push_back(',');
    first_ = false;
  }

  std::string out_;
  bool all_utf8_ = true;
  bool first_ = true;
};

void WriteUpdateDescription(ValueWriter& w, const UpdateDescription& u) {
  w.BeginObject();
  w.Field("removedFields");
  if (u.removed_fields.empty()) {
    w.Null();
  } else {
    w.BeginArray();
    for (const std::string& field : u.removed_fields) w.String(field);
    w.EndArray();
  }
  w.Field("updatedFields").Document(u.updated_fields);
  w.Field("truncatedArrays");
  if (u.truncated_arrays.empty()) {
    w.Null();
  } else {
    w.BeginArray();
    for (const auto& t : u.truncated_arrays) {
      w.BeginObject();
      w.Field("field").String(t.field);
      w.Field("size").Number(t.new_size);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

std::string_view SnapshotMarker(const ChangeEvent& event, const EncodeOptions& options) {
  if (event.kind != EventKind::kRead) return "false";
  return options.last_snapshot_record ? "last" : "true";
}

void WriteSource(ValueWriter& w, const ChangeEvent& event, const EncodeOptions& options) {
  w.BeginObject();
  w.Field("version").String(kSourceVersion);
  w.Field("connector").String("mongodb");
  w.Field("name").String(options.server_name);
  w.Field("ts_ms").Number(event.cluster_time_s != 0 ? static_cast<int64_t>(event.cluster_time_s) * 1000
                                                    : event.wall_time_ms);
  w.Field("snapshot").String(SnapshotMarker(event, options));
  w.Field("db").String(event.db);
  w.Field("collection").TextOrNull(event.collection);
  w.Field("ord").Number(event.cluster_time_i);
  w.Field("lsid").OptionalString(event.txn_lsid);
  w.Field("txnNumber");
  event.txn_number ? w.Number(*event.txn_number) : w.Null();
  w.Field("wallTime").Number(event.wall_time_ms);
  w.EndObject();
}

void WriteM2m(ValueWriter& w, const ChangeEvent& event) {
  w.BeginObject();
  w.Field("v").Number(kEventFormatVersion);
  w.Field("event").String(EventKindName(event.kind));
  if (!event.resume_token.empty()) w.Field("resume_token").String(event.resume_token);
  w.Field("cluster_time").BeginObject();
  w.Field("t").Number(event.cluster_time_s);
  w.Field("i").Number(event.cluster_time_i);
  w.EndObject();
  if (!event.document_key.empty()) w.Field("document_key").Document(event.document_key);
  if (event.kind == EventKind::kRename) {
    w.Field("rename_to").BeginObject();
    w.Field("db").String(event.rename_to_db);
    w.Field("collection").String(event.rename_to_collection);
    w.EndObject();
  }
  if (event.copies > 0) w.Field("copies").Number(event.copies);
  if (event.update && !event.update->disambiguated_paths.empty()) {
    w.Field("disambiguated_paths").Document(event.update->disambiguated_paths);
  }
  if (event.document_gone) w.Field("document_gone").Bool(true);
  w.EndObject();
}

// Room for the whole value in one allocation, usually: canonical Extended JSON of typical documents
// is two to three times their BSON, the envelope a few hundred bytes.
size_t EstimatedSize(const ChangeEvent& event) {
  size_t bson = event.document_key.get()->len;
  if (event.after) bson += event.after->get()->len;
  if (event.before) bson += event.before->get()->len;
  if (event.update) bson += event.update->updated_fields.get()->len + event.update->disambiguated_paths.get()->len;
  return 3 * bson + event.resume_token.size() + 640;
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers. `path` names the field in messages ("value.source.db").

Status FieldError(std::string_view path, std::string_view cause) {
  return Status::Invalid(fmt::format("{}: {}", path, cause));
}

std::string Path(std::string_view parent, std::string_view key) { return fmt::format("{}.{}", parent, key); }

// A parsed JSON value: simdjson's DOM, whose elements point into their parser. Decoding parses the
// envelope of every event apply reads; nlohmann's parser was half of DecodeEvent's time.
using JsonValue = simdjson::dom::element;

// A value whose type was checked (is_object(), is_int64(), ...) as that type.
template <typename T>
T As(const JsonValue& v) {
  T out{};
  if (v.get(out) != simdjson::SUCCESS) return T{};
  return out;
}

// nlohmann's names, which the messages used before.
std::string_view TypeName(const JsonValue& v) {
  switch (v.type()) {
    case simdjson::dom::element_type::OBJECT: return "object";
    case simdjson::dom::element_type::ARRAY: return "array";
    case simdjson::dom::element_type::STRING: return "string";
    case simdjson::dom::element_type::BOOL: return "boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
    default: return "number";
  }
}

// The member `key`, or nullopt when absent or null. A key given twice counts by its last value.
std::optional<JsonValue> Member(const JsonValue& object, std::string_view key) {
  std::optional<JsonValue> found;
  for (auto field : As<simdjson::dom::object>(object)) {
    if (field.key == key) found = field.value;
  }
  if (found && found->is_null()) return std::nullopt;
  return found;
}

bool Contains(const JsonValue& object, std::string_view key) {
  for (auto field : As<simdjson::dom::object>(object)) {
    if (field.key == key) return true;
  }
  return false;
}

Result<std::optional<JsonValue>> ObjectMember(const JsonValue& object, std::string_view key, std::string_view parent) {
  std::optional<JsonValue> m = Member(object, key);
  if (m && !m->is_object()) return FieldError(Path(parent, key), "expected an object");
  return m;
}

Result<std::optional<std::string>> StringMember(const JsonValue& object, std::string_view key,
                                                std::string_view parent) {
  std::optional<JsonValue> m = Member(object, key);
  if (!m) return std::optional<std::string>();
  if (!m->is_string()) return FieldError(Path(parent, key), fmt::format("expected a string, got {}", TypeName(*m)));
  return std::optional<std::string>(As<std::string_view>(*m));
}

Result<std::string> RequiredStringMember(const JsonValue& object, std::string_view key, std::string_view parent) {
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> s, StringMember(object, key, parent));
  if (!s) return FieldError(Path(parent, key), "missing");
  return std::move(*s);
}

Result<std::optional<int64_t>> IntegerMember(const JsonValue& object, std::string_view key, std::string_view parent) {
  std::optional<JsonValue> m = Member(object, key);
  if (!m) return std::optional<int64_t>();
  if (m->is_int64()) return std::optional<int64_t>(As<int64_t>(*m));
  // Above INT64_MAX: wraps, as nlohmann's get<int64_t> did; the range checks below catch it.
  if (m->is_uint64()) return std::optional<int64_t>(static_cast<int64_t>(As<uint64_t>(*m)));
  return FieldError(Path(parent, key), fmt::format("expected an integer, got {}", TypeName(*m)));
}

Result<uint32_t> Uint32Member(const JsonValue& object, std::string_view key, std::string_view parent) {
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> n, IntegerMember(object, key, parent));
  if (!n) return FieldError(Path(parent, key), "missing");
  if (*n < 0 || *n > UINT32_MAX) return FieldError(Path(parent, key), "out of range for an unsigned 32-bit value");
  return static_cast<uint32_t>(*n);
}

Result<BsonDocument> ParseEjson(std::string_view text, std::string_view path) {
  auto doc = BsonDocument::FromJson(text);
  if (!doc.ok()) return FieldError(path, doc.status().message());
  return doc;
}

// A member holding a document as an Extended JSON string (after, before, updatedFields, ...).
Result<std::optional<BsonDocument>> EjsonMember(const JsonValue& object, std::string_view key,
                                                std::string_view parent) {
  std::optional<JsonValue> m = Member(object, key);
  if (!m) return std::optional<BsonDocument>();
  if (!m->is_string()) return FieldError(Path(parent, key), fmt::format("expected a string, got {}", TypeName(*m)));
  M2M_ASSIGN_OR_RETURN(BsonDocument doc, ParseEjson(As<std::string_view>(*m), Path(parent, key)));
  return std::optional<BsonDocument>(std::move(doc));
}

// Parsers keep their buffers between events; one larger than this is let go after its message, so
// a rare large document does not hold its parse buffers for the life of the thread.
constexpr size_t kKeptParserBytes = size_t{1} << 20;

// Parses `text` with `parser` (which must outlive the result's use).
Result<JsonValue> ParseJson(simdjson::dom::parser& parser, std::string_view text, std::string_view what) {
  JsonValue parsed;
  if (parser.parse(text.data(), text.size()).get(parsed) != simdjson::SUCCESS) {
    return FieldError(what, "not valid JSON");
  }
  return parsed;
}

// Kafka Connect's JsonConverter with schemas enabled wraps the payload: {"schema": …, "payload": …}.
JsonValue Unwrap(const JsonValue& message) {
  if (message.is_object() && Contains(message, "payload") && Contains(message, "schema")) {
    std::optional<JsonValue> payload;
    for (auto field : As<simdjson::dom::object>(message)) {
      if (field.key == "payload") payload = field.value;
    }
    return *payload;
  }
  return message;
}

Result<UpdateDescription> DecodeUpdateDescription(const JsonValue& u) {
  constexpr std::string_view kPath = "value.updateDescription";
  UpdateDescription out;
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> updated, EjsonMember(u, "updatedFields", kPath));
  if (updated) out.updated_fields = std::move(*updated);
  if (std::optional<JsonValue> removed = Member(u, "removedFields")) {
    if (!removed->is_array()) return FieldError(Path(kPath, "removedFields"), "expected an array");
    size_t i = 0;
    for (JsonValue name : As<simdjson::dom::array>(*removed)) {
      if (!name.is_string()) return FieldError(fmt::format("{}.removedFields[{}]", kPath, i), "expected a string");
      out.removed_fields.emplace_back(As<std::string_view>(name));
      ++i;
    }
  }
  if (std::optional<JsonValue> truncated = Member(u, "truncatedArrays")) {
    if (!truncated->is_array()) return FieldError(Path(kPath, "truncatedArrays"), "expected an array");
    size_t i = 0;
    for (JsonValue t : As<simdjson::dom::array>(*truncated)) {
      std::string item = fmt::format("{}.truncatedArrays[{}]", kPath, i++);
      if (!t.is_object()) return FieldError(item, "expected an object");
      TruncatedArray entry;
      M2M_ASSIGN_OR_RETURN(entry.field, RequiredStringMember(t, "field", item));
      M2M_ASSIGN_OR_RETURN(std::optional<int64_t> size, IntegerMember(t, "size", item));
      if (!size) return FieldError(Path(item, "size"), "missing");
      entry.new_size = *size;
      out.truncated_arrays.push_back(std::move(entry));
    }
  }
  return out;
}

// Fields our format and Debezium's share: namespace, images, updateDescription, transaction, times.
Status DecodeCommon(const JsonValue& value, ChangeEvent* event) {
  M2M_ASSIGN_OR_RETURN(std::optional<JsonValue> source, ObjectMember(value, "source", "value"));
  if (!source) return FieldError("value.source", "missing");
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> db, StringMember(*source, "db", "value.source"));
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> coll, StringMember(*source, "collection", "value.source"));
  event->db = db.value_or("");
  event->collection = coll.value_or("");
  M2M_ASSIGN_OR_RETURN(event->txn_lsid, StringMember(*source, "lsid", "value.source"));
  M2M_ASSIGN_OR_RETURN(event->txn_number, IntegerMember(*source, "txnNumber", "value.source"));
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> ts_ms, IntegerMember(*source, "ts_ms", "value.source"));
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> wall, IntegerMember(*source, "wallTime", "value.source"));
  event->wall_time_ms = wall ? *wall : ts_ms.value_or(0);
  // Debezium's own cluster time: seconds in source.ts_ms, increment in source.ord. Ours overrides.
  event->cluster_time_s = static_cast<uint32_t>(ts_ms.value_or(0) / 1000);
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> ord, IntegerMember(*source, "ord", "value.source"));
  event->cluster_time_i = static_cast<uint32_t>(ord.value_or(0));

  M2M_ASSIGN_OR_RETURN(event->after, EjsonMember(value, "after", "value"));
  M2M_ASSIGN_OR_RETURN(event->before, EjsonMember(value, "before", "value"));
  M2M_ASSIGN_OR_RETURN(std::optional<JsonValue> update, ObjectMember(value, "updateDescription", "value"));
  if (update) {
    M2M_ASSIGN_OR_RETURN(event->update, DecodeUpdateDescription(*update));
  }
  return Status::OK();
}

Status DecodeM2m(const JsonValue& value, const JsonValue& m2m, ChangeEvent* event) {
  constexpr std::string_view kPath = "value.m2m";
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> version, IntegerMember(m2m, "v", kPath));
  if (version != kEventFormatVersion) {
    return FieldError("value.m2m.v", fmt::format("unsupported event format version {} (this build reads {})",
                                                 version ? std::to_string(*version) : "(missing)",
                                                 kEventFormatVersion));
  }
  M2M_ASSIGN_OR_RETURN(std::string name, RequiredStringMember(m2m, "event", kPath));
  auto kind = ParseEventKind(name);
  if (!kind.ok()) return FieldError("value.m2m.event", kind.status().message());
  event->kind = *kind;
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> op, StringMember(value, "op", "value"));
  if (op != OpCode(event->kind)) {
    return FieldError("value.op", fmt::format("\"{}\" does not match m2m.event \"{}\"", op.value_or(""), name));
  }
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> token, StringMember(m2m, "resume_token", kPath));
  event->resume_token = token.value_or("");
  M2M_ASSIGN_OR_RETURN(std::optional<JsonValue> cluster_time, ObjectMember(m2m, "cluster_time", kPath));
  if (!cluster_time) return FieldError("value.m2m.cluster_time", "missing");
  M2M_ASSIGN_OR_RETURN(event->cluster_time_s, Uint32Member(*cluster_time, "t", "value.m2m.cluster_time"));
  M2M_ASSIGN_OR_RETURN(event->cluster_time_i, Uint32Member(*cluster_time, "i", "value.m2m.cluster_time"));
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> key, EjsonMember(m2m, "document_key", kPath));
  if (key) event->document_key = std::move(*key);
  M2M_ASSIGN_OR_RETURN(std::optional<JsonValue> rename_to, ObjectMember(m2m, "rename_to", kPath));
  if (event->kind == EventKind::kRename) {
    if (!rename_to) return FieldError("value.m2m.rename_to", "missing on a rename");
    M2M_ASSIGN_OR_RETURN(event->rename_to_db, RequiredStringMember(*rename_to, "db", "value.m2m.rename_to"));
    M2M_ASSIGN_OR_RETURN(event->rename_to_collection,
                         RequiredStringMember(*rename_to, "collection", "value.m2m.rename_to"));
  }
  M2M_ASSIGN_OR_RETURN(std::optional<int64_t> copies, IntegerMember(m2m, "copies", kPath));
  if (copies && (*copies < 1 || *copies > std::numeric_limits<int32_t>::max())) {
    return FieldError("value.m2m.copies", fmt::format("{} is not a partition count", *copies));
  }
  event->copies = static_cast<int32_t>(copies.value_or(0));
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> paths, EjsonMember(m2m, "disambiguated_paths", kPath));
  if (paths) {
    if (!event->update) return FieldError("value.m2m.disambiguated_paths", "present without updateDescription");
    event->update->disambiguated_paths = std::move(*paths);
  }
  if (std::optional<JsonValue> gone = Member(m2m, "document_gone")) {
    if (!gone->is_bool()) return FieldError("value.m2m.document_gone", "must be true or false");
    bool is_gone = As<bool>(*gone);
    if (is_gone && event->kind != EventKind::kUpdate) {
      return FieldError("value.m2m.document_gone", "present on an event that is not an update");
    }
    event->document_gone = is_gone;
  }
  return Status::OK();
}

// Debezium keys hold the _id as an Extended JSON value in a string: {"id": "{\"$oid\": \"…\"}"}.
Result<BsonDocument> DecodeDebeziumKey(std::optional<std::string_view> key) {
  if (!key) return FieldError("key", "missing (a Debezium event without after needs the key's id)");
  simdjson::dom::parser parser;
  M2M_ASSIGN_OR_RETURN(JsonValue parsed, ParseJson(parser, *key, "key"));
  JsonValue payload = Unwrap(parsed);
  if (!payload.is_object()) return FieldError("key", "expected an object");
  M2M_ASSIGN_OR_RETURN(std::string id, RequiredStringMember(payload, "id", "key"));
  return ParseEjson(fmt::format("{{\"_id\": {}}}", id), "key.id");
}

Status DecodeDebezium(const JsonValue& value, std::optional<std::string_view> key, ChangeEvent* event) {
  M2M_ASSIGN_OR_RETURN(std::string op, RequiredStringMember(value, "op", "value"));
  if (op == "c") {
    event->kind = EventKind::kInsert;
  } else if (op == "r") {
    event->kind = EventKind::kRead;
  } else if (op == "d") {
    event->kind = EventKind::kDelete;
  } else if (op == "u") {
    // Debezium sends a replace as "u" with the whole document and no updateDescription.
    event->kind = event->update ? EventKind::kUpdate : EventKind::kReplace;
  } else {
    return FieldError("value.op", fmt::format("unsupported operation \"{}\" (expected c, u, d or r)", op));
  }
  bool needs_after = event->kind == EventKind::kInsert || event->kind == EventKind::kRead ||
                     event->kind == EventKind::kReplace;
  if (needs_after && !event->after) return FieldError("value.after", fmt::format("missing on op \"{}\"", op));
  // after's _id keeps its exact BSON type; the key's may not (Debezium writes 1004L as "1004").
  bson_iter_t id;
  if (event->after && bson_iter_init_find(&id, event->after->get(), "_id")) {
    bson_append_iter(event->document_key.mutable_get(), "_id", 3, &id);
    return Status::OK();
  }
  M2M_ASSIGN_OR_RETURN(event->document_key, DecodeDebeziumKey(key));
  return Status::OK();
}

}  // namespace

std::string_view EventKindName(EventKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

Result<EventKind> ParseEventKind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<EventKind>(i);
  }
  return Status::Invalid(fmt::format("unknown event kind \"{}\"", name));
}

Status EncodeOptions::Validate() const {
  if (server_name.empty()) return Status::Invalid("EncodeOptions.server_name must not be empty");
  if (processed_at_ms < 0) return Status::Invalid("EncodeOptions.processed_at_ms must not be negative");
  return Status::OK();
}

namespace {
void WriteKey(ValueWriter& w, const ChangeEvent& event) {
  w.BeginObject();
  w.Field("id");
  bson_iter_t id;
  if (bson_iter_init_find(&id, event.document_key.get(), "_id")) {
    w.Value(&id);
  } else {
    w.Null();
  }
  w.EndObject();
}

void WriteValue(ValueWriter& w, const ChangeEvent& event, const EncodeOptions& options) {
  w.BeginObject();
  w.Field("before").OptionalDocument(event.before);
  w.Field("after").OptionalDocument(event.after);
  w.Field("updateDescription");
  event.update ? WriteUpdateDescription(w, *event.update) : w.Null();
  w.Field("source");
  WriteSource(w, event, options);
  w.Field("op").String(OpCode(event.kind));
  w.Field("ts_ms").Number(options.processed_at_ms != 0 ? options.processed_at_ms : event.wall_time_ms);
  w.Field("transaction").Null();
  w.Field("m2m");
  WriteM2m(w, event);
  w.EndObject();
}
}  // namespace

std::string EncodeKey(const ChangeEvent& event) {
  ValueWriter w(128);
  WriteKey(w, event);
  return w.Take();
}

std::string EncodeValue(const ChangeEvent& event, const EncodeOptions& options) {
  ValueWriter w(EstimatedSize(event));
  WriteValue(w, event, options);
  return w.Take();
}

Result<EncodedEvent> EncodeEvent(const ChangeEvent& event, const EncodeOptions& options) {
  ValueWriter key(128), value(EstimatedSize(event));
  WriteKey(key, event);
  WriteValue(value, event, options);
  if (!key.all_utf8() || !value.all_utf8()) {
    return Status::Invalid("a string or field name is not UTF-8; JSON cannot carry it");
  }
  return EncodedEvent{key.Take(), value.Take()};
}

Result<std::optional<ChangeEvent>> DecodeEvent(std::optional<std::string_view> key,
                                               std::optional<std::string_view> value) {
  if (!value) return std::optional<ChangeEvent>();
  thread_local simdjson::dom::parser kept;
  std::optional<simdjson::dom::parser> once;  // for a large message, whose buffers are let go after it
  simdjson::dom::parser& parser = value->size() <= kKeptParserBytes ? kept : once.emplace();
  M2M_ASSIGN_OR_RETURN(JsonValue parsed, ParseJson(parser, *value, "value"));
  JsonValue payload = Unwrap(parsed);
  if (payload.is_null()) return std::optional<ChangeEvent>();  // a tombstone that went through the envelope
  if (!payload.is_object()) return FieldError("value", "expected an object");

  ChangeEvent event;
  M2M_RETURN_NOT_OK(DecodeCommon(payload, &event));
  M2M_ASSIGN_OR_RETURN(std::optional<JsonValue> m2m, ObjectMember(payload, "m2m", "value"));
  if (m2m) {
    M2M_RETURN_NOT_OK(DecodeM2m(payload, *m2m, &event));
  } else {
    M2M_RETURN_NOT_OK(DecodeDebezium(payload, key, &event));
  }
  return std::optional<ChangeEvent>(std::move(event));
}

}  // namespace m2m
