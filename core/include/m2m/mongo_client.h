// A MongoDB client: the one place where libmongoc is called.
//
// Errors come back as Status with code kMongo, native_code = the server or driver error code, and
// retriable() for network errors and the server's retryable error labels.
//
// Thread safety: a MongoClient is used by one thread at a time (a mongoc_client_t is not thread-safe);
// open one per thread.
#pragma once

#include <memory>
#include <string>

#include "m2m/status.h"

namespace m2m {

struct MongoOptions {
  // Connection string, with TLS and auth options as MongoDB documents them
  // (mongodb://user:pass@host/?tls=true&replicaSet=rs0). Default: mongodb://127.0.0.1:27017
  std::string uri = "mongodb://127.0.0.1:27017";
  // Application name reported to the server. Default: mongo2mysql
  std::string app_name = "mongo2mysql";

  Status Validate() const;
};

// `uri` fit for logs and output: the password of its user info and the values of query options that
// may hold secrets (…Password, authMechanismProperties) replaced by ***.
std::string RedactedUri(const std::string& uri);

class MongoClient {
 public:
  static Result<std::unique_ptr<MongoClient>> Connect(const MongoOptions& options);
  ~MongoClient();
  MongoClient(const MongoClient&) = delete;
  MongoClient& operator=(const MongoClient&) = delete;

  // Round trip to the server; fails when it cannot be reached.
  Status Ping();
  // The server's version string, e.g. "7.0.12".
  Result<std::string> ServerVersion();

  // The underlying mongoc_client_t*, for the library's own modules (capture); opaque to users.
  void* native_handle() const;

 private:
  struct Impl;
  explicit MongoClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2m
