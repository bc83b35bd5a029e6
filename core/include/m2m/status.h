// Status and Result<T>: how every fallible operation in mongo2mysql reports failure.
//
// No exceptions cross the library boundary. A Status is free on success (a null pointer) and on failure
// carries a code, a message a user can act on, the originating library's own error code (libmongoc
// domain/code, librdkafka rd_kafka_resp_err_t, MySQL errno) and whether retrying may succeed, so the
// caller can decide what to do next from the error itself.
//
// Thread safety: a Status or Result is a value; distinct objects may be used from distinct threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace m2m {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad configuration, flag or input supplied by the user
  kNotFound,
  kIoError,          // files, sockets, the OS
  kMongo,            // error reported by libmongoc or the MongoDB server
  kKafka,            // error reported by librdkafka or a broker
  kMysql,            // error reported by libmariadb or the MySQL server
  kMapping,          // a document or event cannot be mapped to rows
  kHistoryLost,      // a resume point is no longer in the MongoDB oplog, or an offset in a Kafka partition
  kCancelled,        // stopped on request (signal)
  kDiverged,         // verify: MySQL does not hold what the mapping makes of MongoDB
  kInternal,         // a bug: an invariant did not hold
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, bool retriable = false, long native_code = 0);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status Invalid(std::string message) { return {StatusCode::kInvalidArgument, std::move(message)}; }
  static Status NotFound(std::string message) { return {StatusCode::kNotFound, std::move(message)}; }
  static Status IoError(std::string message) { return {StatusCode::kIoError, std::move(message)}; }
  static Status Mapping(std::string message) { return {StatusCode::kMapping, std::move(message)}; }
  static Status Internal(std::string message) { return {StatusCode::kInternal, std::move(message)}; }
  static Status Cancelled(std::string message) { return {StatusCode::kCancelled, std::move(message)}; }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return ok() ? StatusCode::kOk : state_->code; }
  // Empty when ok().
  const std::string& message() const;
  // True when the same operation may succeed if tried again (a broker or server was briefly away).
  bool retriable() const { return !ok() && state_->retriable; }
  // The originating library's error code (see the header comment); 0 when there is none.
  long native_code() const { return ok() ? 0 : state_->native_code; }

  // "Kafka error: <message>" or "OK".
  std::string ToString() const;
  // Same code and flags, message prefixed with "<context>: ". A no-op on OK.
  Status WithContext(std::string_view context) const;

 private:
  struct State {
    StatusCode code;
    bool retriable;
    long native_code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace m2m

#define M2M_CONCAT_INNER(a, b) a##b
#define M2M_CONCAT(a, b) M2M_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define M2M_RETURN_NOT_OK(expr)            \
  do {                                     \
    ::m2m::Status _st = (expr);            \
    if (!_st.ok()) return _st;             \
  } while (false)

#define M2M_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// `lhs = value of expr`, or returns its Status from the enclosing function.
#define M2M_ASSIGN_OR_RETURN(lhs, expr) \
  M2M_ASSIGN_OR_RETURN_IMPL(M2M_CONCAT(_result_, __LINE__), lhs, expr)
