#include "status_page.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <thread>

#include "page_files.h"
#include "quarantine.h"
#include "status_history.h"

namespace m2m::status {
namespace {

using json = nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 128 random bits, in hex: the retry token (status_page.h).
std::string RandomToken() {
  std::random_device random;  // the kernel's generator (getrandom) on Linux
  std::string out;
  for (int i = 0; i < 4; ++i) {
    char word[9];
    std::snprintf(word, sizeof word, "%08x", random());
    out += word;
  }
  return out;
}

// Headers of every answer: nothing cached, nothing sniffed or framed, and no script, style or image
// from anywhere but the page itself (documents shown in it are data, never markup).
void Send(mg_connection* conn, int code, const char* type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
            "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'none'\r\n"
            "Connection: close\r\n\r\n",
            code, mg_get_response_code_text(conn, code), type, body.size());
  mg_write(conn, body.data(), body.size());
}

void SendJson(mg_connection* conn, int code, const json& body) {
  // Error messages and documents may hold bytes that are not UTF-8: shown replaced, never a throw.
  Send(conn, code, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

void SendError(mg_connection* conn, int code, const std::string& message) { SendJson(conn, code, {{"error", message}}); }

int HttpCodeFor(const Status& st) {
  if (st.code() == StatusCode::kInvalidArgument) return 409;
  return st.retriable() ? 503 : 500;
}

// The biggest raw record the detail answer carries whole; a bigger one is cut (the CLI and MySQL
// have it whole) so that one huge event cannot make the page slow.
constexpr size_t kMaxRecordBytes = 1 << 20;

json Clipped(const std::optional<std::string>& s) {
  if (!s) return nullptr;
  if (s->size() <= kMaxRecordBytes) return *s;
  return s->substr(0, kMaxRecordBytes) + "... (" + std::to_string(s->size()) + " bytes; cut here)";
}

bool IsLoopback(const std::string& addr) {
  return addr.rfind("127.", 0) == 0 || addr == "::1" || addr.rfind("::ffff:127.", 0) == 0;
}

// The host part of a Host header: "127.0.0.1:9189" -> "127.0.0.1", "[::1]:9189" -> "::1".
std::string HostOf(const std::string& host) {
  if (!host.empty() && host[0] == '[') return host.substr(1, host.find(']') - 1);
  return host.substr(0, host.find(':'));
}

bool IsAddressOrLocalhost(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  return host == "localhost" || inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

}  // namespace

std::string RetryRefusal(const RetryRequest& r) {
  if (!r.mongo_given) {
    return "retry is off: a retry writes the document's current state, read from MongoDB; start the page with "
           "--mongo-uri (and the --mapping apply runs with)";
  }
  if (!IsLoopback(r.remote_addr)) {
    return "retry is accepted from this machine only (the page has no authentication); this request came from " +
           r.remote_addr;
  }
  if (!r.host || !IsAddressOrLocalhost(HostOf(r.host))) {
    return std::string("retry needs the page opened by address or as localhost, not by the name ") +
           (r.host ? "'" + std::string(r.host) + "'" : "(none)") + " (a name could be pointed here by another site)";
  }
  if (r.origin && std::string(r.origin) != "http://" + std::string(r.host)) {
    return "retry refused: it was sent from another site (Origin " + std::string(r.origin) + ")";
  }
  if (!r.token || r.token != r.expected_token) {
    return "retry refused: the request lacks the page's token (reload the page; the token changes when the "
           "server restarts)";
  }
  return "";
}

Status StatusPageOptions::Validate() const {
  M2M_RETURN_NOT_OK(status.Validate());
  if (status.interval.count() <= 0) return Status::Invalid("the status page samples every --interval seconds: give more than 0");
  if (port < 0 || port > 65535) return Status::Invalid("status page port must be in 0..65535");
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return Status::Invalid("status page host must be an IPv4 address: " + host);
  if (history < status.interval) return Status::Invalid("the history must be at least one interval long");
  if (mongo) M2M_RETURN_NOT_OK(mongo->Validate());
  return Status::OK();
}

struct StatusPage::Impl {
  StatusPageOptions o;
  std::string token = RandomToken();
  mg_context* ctx = nullptr;
  int port = 0;

  std::mutex mu;  // guards history and last_error
  StatusHistory history{o.history};
  std::optional<std::pair<int64_t, std::string>> last_error;  // when, what; cleared by a good sample

  std::mutex retry_mu;  // one retry at a time: two of the same row would both write it

  explicit Impl(StatusPageOptions options) : o(std::move(options)) {}

  ~Impl() {
    if (ctx) mg_stop(ctx);  // waits for the requests being answered
  }

  Result<std::unique_ptr<apply::QuarantineTool>> Quarantine(bool for_retry) const {
    if (!o.status.mysql) return Status::Invalid("apply's quarantine is shown with --mysql-database only");
    apply::ApplierOptions a;
    a.group = o.status.group;
    a.mysql = *o.status.mysql;
    a.mapping = o.mapping;
    if (for_retry) a.mongo = o.mongo;
    return apply::QuarantineTool::Make(std::move(a));
  }

  // The row `id` of this page's group, pending or not; NotFound when there is none.
  Result<apply::QuarantineRow> Row(apply::QuarantineTool& tool, int64_t id) const {
    M2M_ASSIGN_OR_RETURN(auto rows, tool.List({.group = o.status.group, .ids = {id}, .include_done = true}));
    if (rows.empty()) {
      return Status::NotFound("no quarantine row " + std::to_string(id) + " in group " + o.status.group);
    }
    return rows.front();
  }

  void Handle(mg_connection* conn) {
    const mg_request_info* ri = mg_get_request_info(conn);
    const std::string method = ri->request_method ? ri->request_method : "";
    const std::string path = ri->local_uri ? ri->local_uri : "";
    const std::string query = ri->query_string ? ri->query_string : "";
    if (method == "GET") {
      for (const PageFile& f : PageFiles()) {
        if (path == f.path || (path == "/" && std::strcmp(f.path, "/index.html") == 0)) {
          return Send(conn, 200, f.type, std::string(f.data, f.size));
        }
      }
      if (path == "/api/status") return SendJson(conn, 200, StatusJson());
      if (path == "/api/history") {
        std::lock_guard<std::mutex> lock(mu);
        return SendJson(conn, 200, history.ToJson());
      }
      if (path == "/api/quarantine") return List(conn, query.find("done=1") != std::string::npos);
    }
    const std::string q = "/api/quarantine/";
    if (path.rfind(q, 0) == 0) {
      std::string rest = path.substr(q.size());
      const std::string retry = "/retry";
      const bool is_retry = rest.size() > retry.size() && rest.compare(rest.size() - retry.size(), retry.size(), retry) == 0;
      if (is_retry) rest.resize(rest.size() - retry.size());
      if (!rest.empty() && rest.size() < 19 && rest.find_first_not_of("0123456789") == std::string::npos) {
        const int64_t id = std::stoll(rest);
        if (!is_retry && method == "GET") return Detail(conn, id);
        if (is_retry && method == "POST") return Retry(conn, ri, id);
        return SendError(conn, 405, is_retry ? "a retry is a POST" : "an event is read with GET");
      }
    }
    SendError(conn, 404, "no such page: " + method + " " + path);
  }

  json StatusJson() {
    json out;
    {
      std::lock_guard<std::mutex> lock(mu);
      out["status"] = history.latest() ? history.latest()->ToJson() : json(nullptr);
      out["error"] = last_error ? json{{"at_ms", last_error->first}, {"message", last_error->second}} : json(nullptr);
    }
    out["interval_s"] = std::chrono::duration<double>(o.status.interval).count();
    out["history_s"] = std::chrono::duration<double>(o.history).count();
    // What holds for every request; the rest is checked per request.
    std::string off = o.mongo ? "" : RetryRefusal({.mongo_given = false});
    out["retry"] = {{"enabled", off.empty()}, {"why_not", off}};
    out["token"] = token;
    return out;
  }

  void List(mg_connection* conn, bool include_done) {
    auto tool = Quarantine(false);
    if (!tool.ok()) return SendJson(conn, 200, {{"rows", json::array()}, {"note", tool.status().message()}});
    auto rows = (*tool)->List({.group = o.status.group, .include_done = include_done});
    if (!rows.ok()) return SendError(conn, HttpCodeFor(rows.status()), rows.status().message());
    json out = json::array();
    for (const auto& r : *rows) out.push_back(json(r.ToJson()));
    SendJson(conn, 200, {{"rows", out}, {"note", nullptr}});
  }

  void Detail(mg_connection* conn, int64_t id) {
    auto tool = Quarantine(false);
    if (!tool.ok()) return SendError(conn, HttpCodeFor(tool.status()), tool.status().message());
    auto row = Row(**tool, id);
    if (!row.ok()) return SendError(conn, row.status().code() == StatusCode::kNotFound ? 404 : HttpCodeFor(row.status()), row.status().message());
    auto record = (*tool)->Record(id);
    if (!record.ok()) return SendError(conn, HttpCodeFor(record.status()), record.status().message());
    SendJson(conn, 200, {{"row", json(row->ToJson())}, {"key", Clipped(record->key)}, {"value", Clipped(record->value)},
                         {"document", record->document.empty() ? json(nullptr) : Clipped(record->document)}});
  }

  void Retry(mg_connection* conn, const mg_request_info* ri, int64_t id) {
    std::string refusal = RetryRefusal({.mongo_given = o.mongo.has_value(),
                                        .remote_addr = ri->remote_addr,
                                        .host = mg_get_header(conn, "Host"),
                                        .origin = mg_get_header(conn, "Origin"),
                                        .token = mg_get_header(conn, "X-M2M-Token"),
                                        .expected_token = token});
    if (!refusal.empty()) return SendError(conn, 403, refusal);
    std::lock_guard<std::mutex> lock(retry_mu);
    auto tool = Quarantine(true);
    if (!tool.ok()) return SendError(conn, HttpCodeFor(tool.status()), tool.status().message());
    auto row = Row(**tool, id);
    if (!row.ok()) return SendError(conn, row.status().code() == StatusCode::kNotFound ? 404 : HttpCodeFor(row.status()), row.status().message());
    auto outcome = (*tool)->Replay(*row);
    if (!outcome.ok()) return SendError(conn, HttpCodeFor(outcome.status()), outcome.status().message());
    static constexpr const char* kNames[] = {"written", "deleted", "not_replayed", "failed"};
    spdlog::info("status page: retry of quarantine row {}: {}: {}", id, kNames[static_cast<int>(outcome->kind)],
                 outcome->detail);
    SendJson(conn, 200, {{"id", id}, {"outcome", kNames[static_cast<int>(outcome->kind)]}, {"detail", outcome->detail}});
  }

  static int OnRequest(mg_connection* conn, void* self) {
    try {
      static_cast<Impl*>(self)->Handle(conn);
    } catch (const std::exception& e) {  // nothing may unwind into civetweb's C
      SendError(conn, 500, std::string("internal error: ") + e.what());
    }
    return 1;
  }
};

Result<std::unique_ptr<StatusPage>> StatusPage::Start(StatusPageOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  auto impl = std::make_unique<Impl>(std::move(options));
  const std::string address = impl->o.host + ":" + std::to_string(impl->o.port);
  // Four threads: the page's script asks for status, history and the quarantine at once, and a
  // retry may take seconds (MongoDB, MySQL) without holding those up.
  const char* civet_options[] = {"listening_ports", address.c_str(), "num_threads", "4", "request_timeout_ms", "10000",
                                 "enable_keep_alive", "no", nullptr};
  mg_callbacks callbacks{};
  impl->ctx = mg_start(&callbacks, nullptr, civet_options);
  if (!impl->ctx) {
    return Status::IoError("cannot serve the status page on " + address +
                           ": cannot listen there (the port in use, or not an address of this host)");
  }
  mg_set_request_handler(impl->ctx, "**", &Impl::OnRequest, impl.get());  // every path: Handle routes
  mg_server_port ports[1]{};
  if (mg_get_server_ports(impl->ctx, 1, ports) < 1) return Status::IoError("cannot serve the status page on " + address);
  impl->port = ports[0].port;
  return std::unique_ptr<StatusPage>(new StatusPage(std::move(impl)));
}

StatusPage::StatusPage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StatusPage::~StatusPage() = default;

int StatusPage::port() const { return impl_->port; }

Status StatusPage::Run() {
  StatusOptions read = impl_->o.status;
  read.interval = std::chrono::milliseconds(0);  // a rate comes from the sample before (StatusHistory)
  while (!stop_.load()) {
    const auto next = std::chrono::steady_clock::now() + impl_->o.status.interval;
    auto st = ReadPipelineStatus(read);
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      if (st.ok()) {
        impl_->history.Add(std::move(st).value());
        impl_->last_error.reset();
      } else {
        if (!impl_->last_error) spdlog::warn("status page: cannot read the pipeline's status: {}", st.status().ToString());
        impl_->last_error = {NowMs(), st.status().ToString()};
      }
    }
    while (!stop_.load() && std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return Status::OK();
}

}  // namespace m2m::status
