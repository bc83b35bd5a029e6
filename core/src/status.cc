#include "m2m/status.h"

namespace m2m {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "Invalid argument";
    case StatusCode::kNotFound: return "Not found";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kMongo: return "MongoDB error";
    case StatusCode::kKafka: return "Kafka error";
    case StatusCode::kMysql: return "MySQL error";
    case StatusCode::kMapping: return "Mapping error";
    case StatusCode::kHistoryLost: return "History lost";
    case StatusCode::kCancelled: return "Cancelled";
    case StatusCode::kDiverged: return "MySQL differs from MongoDB";
    case StatusCode::kInternal: return "Internal error";
  }
  return "Unknown error";
}

Status::Status(StatusCode code, std::string message, bool retriable, long native_code)
    : state_(code == StatusCode::kOk
                 ? nullptr
                 : new State{code, retriable, native_code, std::move(message)}) {}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return ok() ? kEmpty : state_->message;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  out += ": ";
  out += state_->message;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return {};
  std::string message(context);
  message += ": ";
  message += state_->message;
  return Status(state_->code, std::move(message), state_->retriable, state_->native_code);
}

}  // namespace m2m
