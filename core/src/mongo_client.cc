#include "m2m/mongo_client.h"

#include <algorithm>
#include <cctype>

#include <mongoc/mongoc.h>

#include <mutex>

#include "mongo_error.h"

namespace m2m {

Status MongoStatus(const bson_error_t& error, std::string_view what, const bson_t* reply) {
  bool retriable = error.domain == MONGOC_ERROR_STREAM || error.domain == MONGOC_ERROR_SERVER_SELECTION;
  bson_iter_t it, label;
  if (reply && bson_iter_init_find(&it, reply, "errorLabels") && bson_iter_recurse(&it, &label)) {
    while (bson_iter_next(&label)) {
      const char* l = bson_iter_utf8(&label, nullptr);
      if (l && (std::string_view(l) == "RetryableWriteError" || std::string_view(l) == "ResumableChangeStreamError" ||
                std::string_view(l) == "TransientTransactionError")) {
        retriable = true;
      }
    }
  }
  std::string message(what);
  message += ": ";
  message += error.message;
  return Status(StatusCode::kMongo, std::move(message), retriable, error.code);
}

struct MongoClient::Impl {
  mongoc_client_t* client = nullptr;
  ~Impl() {
    if (client) mongoc_client_destroy(client);
  }
};

Status MongoOptions::Validate() const {
  if (uri.empty()) return Status::Invalid("mongo.uri is empty");
  bson_error_t error;
  mongoc_uri_t* parsed = mongoc_uri_new_with_error(uri.c_str(), &error);
  if (parsed == nullptr) return Status::Invalid(std::string("mongo.uri is not a valid connection string: ") + error.message);
  mongoc_uri_destroy(parsed);
  return Status::OK();
}

MongoClient::MongoClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MongoClient::~MongoClient() = default;

std::string RedactedUri(const std::string& uri) {
  size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return uri;
  size_t host = scheme + 3;
  size_t query = uri.find('?', host);
  size_t authority_end = std::min(uri.find('/', host), query);
  // user:password@hosts; the password may hold ':' but not an unescaped '@'.
  size_t at = uri.rfind('@', authority_end == std::string::npos ? std::string::npos : authority_end - 1);
  std::string out = uri.substr(0, query);
  if (at != std::string::npos && at >= host) {
    size_t colon = uri.find(':', host);
    if (colon < at) out = uri.substr(0, colon + 1) + "***" + uri.substr(at, query - at);
  }
  if (query == std::string::npos) return out;
  out += '?';
  for (size_t start = query + 1; start <= uri.size();) {
    size_t end = std::min(uri.find('&', start), uri.size());
    std::string option = uri.substr(start, end - start);
    size_t eq = option.find('=');
    std::string key = option.substr(0, eq);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
    if (eq != std::string::npos &&
        (key.find("password") != std::string::npos || key == "authmechanismproperties")) {
      option = option.substr(0, eq + 1) + "***";
    }
    out += (start == query + 1 ? "" : "&") + option;
    start = end + 1;
  }
  return out;
}

Result<std::unique_ptr<MongoClient>> MongoClient::Connect(const MongoOptions& options) {
  static std::once_flag init;
  std::call_once(init, [] { mongoc_init(); });
  M2M_RETURN_NOT_OK(options.Validate());
  bson_error_t error;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(options.uri.c_str(), &error);
  auto impl = std::make_unique<Impl>();
  impl->client = mongoc_client_new_from_uri_with_error(uri, &error);
  mongoc_uri_destroy(uri);
  if (impl->client == nullptr) return MongoStatus(error, "cannot create MongoDB client");
  mongoc_client_set_error_api(impl->client, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_set_appname(impl->client, options.app_name.c_str());
  return std::unique_ptr<MongoClient>(new MongoClient(std::move(impl)));
}

Status MongoClient::Ping() {
  bson_t* cmd = BCON_NEW("ping", BCON_INT32(1));
  bson_t reply;
  bson_error_t error;
  bool ok = mongoc_client_command_simple(impl_->client, "admin", cmd, nullptr, &reply, &error);
  Status st = ok ? Status::OK() : MongoStatus(error, "MongoDB ping failed", &reply);
  bson_destroy(&reply);
  bson_destroy(cmd);
  return st;
}

Result<std::string> MongoClient::ServerVersion() {
  bson_t* cmd = BCON_NEW("buildInfo", BCON_INT32(1));
  bson_t reply;
  bson_error_t error;
  bool ok = mongoc_client_command_simple(impl_->client, "admin", cmd, nullptr, &reply, &error);
  bson_destroy(cmd);
  if (!ok) {
    Status st = MongoStatus(error, "buildInfo failed", &reply);
    bson_destroy(&reply);
    return st;
  }
  bson_iter_t it;
  std::string version = bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)
                            ? bson_iter_utf8(&it, nullptr)
                            : "unknown";
  bson_destroy(&reply);
  return version;
}

void* MongoClient::native_handle() const { return impl_->client; }

}  // namespace m2m
