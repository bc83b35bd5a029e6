// Raw MongoDB change-stream events -> ChangeEvent (see event_codec.h for the contract).
#include <fmt/format.h>

#include <array>

#include "event_bson.h"
#include "m2m/event_codec.h"

namespace m2m {
namespace {

using event_internal::BsonTypeName;
using event_internal::SubDocument;

Status Missing(std::string_view field) { return Status::Invalid(fmt::format("field \"{}\" is missing", field)); }

Status WrongType(std::string_view field, std::string_view expected, const bson_iter_t* it) {
  return Status::Invalid(
      fmt::format("field \"{}\" must be {}, not {}", field, expected, BsonTypeName(bson_iter_type(it))));
}

// Finds `key` in `doc`; a null value counts as absent, as MongoDB sends fullDocument: null when a
// lookup or post-image found nothing.
bool FindNonNull(const bson_t* doc, const char* key, bson_iter_t* it) {
  return bson_iter_init_find(it, doc, key) && !BSON_ITER_HOLDS_NULL(it);
}

// `path` names the field in messages (e.g. "ns.db") when `doc` is a sub-document.
Result<std::optional<BsonDocument>> OptionalDocument(const bson_t* doc, const char* key, std::string_view path) {
  bson_iter_t it;
  if (!FindNonNull(doc, key, &it)) return std::optional<BsonDocument>();
  if (!BSON_ITER_HOLDS_DOCUMENT(&it)) return WrongType(path, "a document", &it);
  return std::optional<BsonDocument>(SubDocument(&it));
}

Result<BsonDocument> RequiredDocument(const bson_t* doc, const char* key, std::string_view path) {
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> found, OptionalDocument(doc, key, path));
  if (!found) return Missing(path);
  return std::move(*found);
}

Result<std::optional<std::string>> OptionalString(const bson_t* doc, const char* key, std::string_view path) {
  bson_iter_t it;
  if (!FindNonNull(doc, key, &it)) return std::optional<std::string>();
  if (!BSON_ITER_HOLDS_UTF8(&it)) return WrongType(path, "a string", &it);
  uint32_t length = 0;
  const char* s = bson_iter_utf8(&it, &length);
  return std::optional<std::string>(std::string(s, length));
}

Result<std::string> RequiredString(const bson_t* doc, const char* key, std::string_view path) {
  M2M_ASSIGN_OR_RETURN(std::optional<std::string> found, OptionalString(doc, key, path));
  if (!found) return Missing(path);
  return std::move(*found);
}

// MongoDB writes counts as int32 or int64 depending on size; both are accepted.
Result<std::optional<int64_t>> OptionalInteger(const bson_t* doc, const char* key, std::string_view path) {
  bson_iter_t it;
  if (!FindNonNull(doc, key, &it)) return std::optional<int64_t>();
  if (!BSON_ITER_HOLDS_INT32(&it) && !BSON_ITER_HOLDS_INT64(&it)) return WrongType(path, "an integer", &it);
  return std::optional<int64_t>(bson_iter_as_int64(&it));
}

// ns {db, coll} or to {db, coll}; `need_collection` is false for dropDatabase, whose ns has no coll.
Result<std::optional<Namespace>> OptionalNamespace(const bson_t* change, const char* key, bool need_collection) {
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> doc, OptionalDocument(change, key, key));
  if (!doc) return std::optional<Namespace>();
  Namespace ns;
  M2M_ASSIGN_OR_RETURN(ns.db, RequiredString(doc->get(), "db", fmt::format("{}.db", key)));
  std::string coll_path = fmt::format("{}.coll", key);
  if (need_collection) {
    M2M_ASSIGN_OR_RETURN(ns.collection, RequiredString(doc->get(), "coll", coll_path));
  } else {
    M2M_ASSIGN_OR_RETURN(std::optional<std::string> coll, OptionalString(doc->get(), "coll", coll_path));
    ns.collection = coll.value_or("");
  }
  return std::optional<Namespace>(std::move(ns));
}

Result<std::vector<std::string>> StringArray(const bson_iter_t* array, std::string_view path) {
  std::vector<std::string> out;
  bson_iter_t it;
  bson_iter_recurse(array, &it);
  while (bson_iter_next(&it)) {
    if (!BSON_ITER_HOLDS_UTF8(&it)) return WrongType(fmt::format("{}.{}", path, bson_iter_key(&it)), "a string", &it);
    uint32_t length = 0;
    const char* s = bson_iter_utf8(&it, &length);
    out.emplace_back(s, length);
  }
  return out;
}

Result<std::vector<TruncatedArray>> TruncatedArrays(const bson_iter_t* array) {
  std::vector<TruncatedArray> out;
  bson_iter_t it;
  bson_iter_recurse(array, &it);
  while (bson_iter_next(&it)) {
    std::string path = fmt::format("updateDescription.truncatedArrays.{}", bson_iter_key(&it));
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) return WrongType(path, "a document", &it);
    BsonDocument entry = SubDocument(&it);
    TruncatedArray t;
    M2M_ASSIGN_OR_RETURN(t.field, RequiredString(entry.get(), "field", path + ".field"));
    M2M_ASSIGN_OR_RETURN(std::optional<int64_t> size, OptionalInteger(entry.get(), "newSize", path + ".newSize"));
    if (!size) return Missing(path + ".newSize");
    t.new_size = *size;
    out.push_back(std::move(t));
  }
  return out;
}

Result<UpdateDescription> ParseUpdateDescription(const BsonDocument& doc) {
  UpdateDescription out;
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> updated,
                       OptionalDocument(doc.get(), "updatedFields", "updateDescription.updatedFields"));
  if (updated) out.updated_fields = std::move(*updated);
  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> paths,
                       OptionalDocument(doc.get(), "disambiguatedPaths", "updateDescription.disambiguatedPaths"));
  if (paths) out.disambiguated_paths = std::move(*paths);
  bson_iter_t it;
  if (FindNonNull(doc.get(), "removedFields", &it)) {
    if (!BSON_ITER_HOLDS_ARRAY(&it)) return WrongType("updateDescription.removedFields", "an array", &it);
    M2M_ASSIGN_OR_RETURN(out.removed_fields, StringArray(&it, "updateDescription.removedFields"));
  }
  if (FindNonNull(doc.get(), "truncatedArrays", &it)) {
    if (!BSON_ITER_HOLDS_ARRAY(&it)) return WrongType("updateDescription.truncatedArrays", "an array", &it);
    M2M_ASSIGN_OR_RETURN(out.truncated_arrays, TruncatedArrays(&it));
  }
  return out;
}

// Fields every event has: resume token, cluster time, wall time, transaction.
Status ParseCommonFields(const bson_t* change, ChangeEvent* event) {
  M2M_ASSIGN_OR_RETURN(BsonDocument token, RequiredDocument(change, "_id", "_id"));
  event->resume_token = token.ToCanonicalJson();

  bson_iter_t it;
  if (!FindNonNull(change, "clusterTime", &it)) return Missing("clusterTime");
  if (!BSON_ITER_HOLDS_TIMESTAMP(&it)) return WrongType("clusterTime", "a timestamp", &it);
  bson_iter_timestamp(&it, &event->cluster_time_s, &event->cluster_time_i);

  if (FindNonNull(change, "wallTime", &it)) {
    if (!BSON_ITER_HOLDS_DATE_TIME(&it)) return WrongType("wallTime", "a date", &it);
    event->wall_time_ms = bson_iter_date_time(&it);
  } else {
    event->wall_time_ms = static_cast<int64_t>(event->cluster_time_s) * 1000;
  }

  M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> lsid, OptionalDocument(change, "lsid", "lsid"));
  if (lsid) event->txn_lsid = lsid->ToCanonicalJson();
  M2M_ASSIGN_OR_RETURN(event->txn_number, OptionalInteger(change, "txnNumber", "txnNumber"));
  return Status::OK();
}

// documentKey must hold _id: it is the row's identity everywhere downstream.
Status ParseDocumentKey(const bson_t* change, ChangeEvent* event) {
  M2M_ASSIGN_OR_RETURN(event->document_key, RequiredDocument(change, "documentKey", "documentKey"));
  if (!bson_has_field(event->document_key.get(), "_id")) return Missing("documentKey._id");
  return Status::OK();
}

struct KindByName {
  std::string_view name;
  EventKind kind;
};

// The operationType values we convert.
constexpr std::array<KindByName, 8> kOperationTypes = {{
    {"insert", EventKind::kInsert},
    {"update", EventKind::kUpdate},
    {"replace", EventKind::kReplace},
    {"delete", EventKind::kDelete},
    {"drop", EventKind::kDrop},
    {"rename", EventKind::kRename},
    {"dropDatabase", EventKind::kDropDatabase},
    {"invalidate", EventKind::kInvalidate},
}};

std::optional<EventKind> KindOfOperationType(std::string_view operation_type) {
  for (const auto& entry : kOperationTypes) {
    if (entry.name == operation_type) return entry.kind;
  }
  return std::nullopt;
}

bool IsDocumentEvent(EventKind kind) {
  return kind == EventKind::kInsert || kind == EventKind::kUpdate || kind == EventKind::kReplace ||
         kind == EventKind::kDelete;
}

Result<ChangeEvent> Convert(const bson_t* change, EventKind kind, const Namespace* fallback) {
  ChangeEvent event;
  event.kind = kind;
  M2M_RETURN_NOT_OK(ParseCommonFields(change, &event));

  M2M_ASSIGN_OR_RETURN(std::optional<Namespace> ns,
                       OptionalNamespace(change, "ns", kind != EventKind::kDropDatabase));
  if (!ns && fallback != nullptr) ns = *fallback;
  if (ns) {
    event.db = std::move(ns->db);
    event.collection = std::move(ns->collection);
  } else if (kind != EventKind::kInvalidate) {
    return Missing("ns");
  }

  if (kind == EventKind::kRename) {
    M2M_ASSIGN_OR_RETURN(std::optional<Namespace> to, OptionalNamespace(change, "to", true));
    if (!to) return Missing("to");
    event.rename_to_db = std::move(to->db);
    event.rename_to_collection = std::move(to->collection);
  }
  if (!IsDocumentEvent(kind)) return event;

  M2M_ASSIGN_OR_RETURN(event.after, OptionalDocument(change, "fullDocument", "fullDocument"));
  M2M_ASSIGN_OR_RETURN(event.before,
                       OptionalDocument(change, "fullDocumentBeforeChange", "fullDocumentBeforeChange"));
  if (kind == EventKind::kDelete) {
    event.after.reset();  // nothing is after a delete, whatever fullDocument says
  }
  if ((kind == EventKind::kInsert || kind == EventKind::kReplace) && !event.after) return Missing("fullDocument");
  if (kind == EventKind::kUpdate) {
    M2M_ASSIGN_OR_RETURN(std::optional<BsonDocument> description,
                         OptionalDocument(change, "updateDescription", "updateDescription"));
    if (description) {
      M2M_ASSIGN_OR_RETURN(event.update, ParseUpdateDescription(*description));
    } else if (!event.after) {
      return Status::Invalid("field \"updateDescription\" is missing and so is \"fullDocument\"");
    }
  }
  M2M_RETURN_NOT_OK(ParseDocumentKey(change, &event));
  return event;
}

}  // namespace

bool IsSupportedOperationType(std::string_view operation_type) {
  return KindOfOperationType(operation_type).has_value();
}

bool FullDocumentIsNull(const bson_t* change) {
  bson_iter_t it;
  auto op = OptionalString(change, "operationType", "operationType");
  return op.ok() && *op == std::optional<std::string>("update") && bson_iter_init_find(&it, change, "fullDocument") &&
         BSON_ITER_HOLDS_NULL(&it);
}

Result<ChangeEvent> FromChangeStreamDocument(const bson_t* change, const Namespace* fallback) {
  auto op = OptionalString(change, "operationType", "operationType");
  if (!op.ok()) return op.status().WithContext("change stream event");
  if (!op->has_value()) return Missing("operationType").WithContext("change stream event");
  const std::string& type = **op;
  std::optional<EventKind> kind = KindOfOperationType(type);
  if (!kind) return Status::Invalid(fmt::format("change stream event: unsupported operationType \"{}\"", type));
  auto event = Convert(change, *kind, fallback);
  if (!event.ok()) return event.status().WithContext(fmt::format("change stream \"{}\" event", type));
  return event;
}

Result<ChangeEvent> MakeSnapshotRead(std::string_view db, std::string_view collection, const bson_t* doc) {
  bson_iter_t id;
  if (!bson_iter_init_find(&id, doc, "_id")) {
    return Status::Invalid(fmt::format("snapshot document in {}.{}: field \"_id\" is missing", db, collection));
  }
  ChangeEvent event;
  event.kind = EventKind::kRead;
  event.db = std::string(db);
  event.collection = std::string(collection);
  bson_append_iter(event.document_key.mutable_get(), "_id", 3, &id);
  event.after = BsonDocument(doc);
  return event;
}

}  // namespace m2m
