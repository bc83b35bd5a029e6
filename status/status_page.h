// The status page, `mongo2mysql status --serve` (docs/status.md): one web page, served by this
// process, with what `mongo2mysql status` prints (per collection: lag, throughput, snapshot
// progress), charts of the last minutes, and a browser of the quarantined events of apply's group
// with a button to retry one.
//
// The process samples the pipeline every StatusOptions::interval (ReadPipelineStatus, on the thread
// that calls Run) into a StatusHistory, so the charts need no Prometheus. HTTP is civetweb's, the
// server prometheus-cpp's /metrics endpoint runs on; prometheus-cpp's Exposer serves collectables
// only, so the page uses civetweb's API directly. The page (status/page/: HTML, JS, CSS) is compiled
// into the binary and loads nothing from elsewhere: it works without internet access.
//
// API (JSON):
//   GET  /api/status                 the newest sample, the last sampling error, whether retry is on
//   GET  /api/history                the samples of the last `history`, for the charts
//   GET  /api/quarantine[?done=1]    apply's quarantined events of --group (pending only, or all)
//   GET  /api/quarantine/<id>        one event: its row, its raw Kafka record and its document
//   POST /api/quarantine/<id>/retry  replays it (QuarantineTool::Replay: the document's current
//                                    state, read from MongoDB) and says what was done
// A retry writes to MySQL, so the page refuses it, saying why, unless every one of these holds:
// MongoDB was given (a replay reads the current document); the request comes from this machine
// (the page has no authentication); its Host is an address or "localhost" (not a name a DNS
// rebinding could point here); its Origin, when sent, is the page's own; and it carries the
// X-M2M-Token header with this process's random token, which only the page's own script reads
// (a cross-site form cannot set a header, and a cross-site script cannot read the token).
//
// Thread safety: Start, then Run on one thread; RequestStop from any thread or a signal handler.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "m2m/mapping.h"
#include "m2m/mongo_client.h"
#include "pipeline_status.h"

namespace m2m::status {

struct StatusPageOptions {
  // What to read, as for `mongo2mysql status`; `interval` is the time between two samples and must
  // be positive. Default: StatusOptions defaults
  StatusOptions status;
  // IPv4 address to listen on. Default: 127.0.0.1 (the page has no authentication)
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (see StatusPage::port). Default: 9189
  int port = 9189;
  // How far back the charts go. Default: 15 minutes
  std::chrono::milliseconds history = std::chrono::minutes(15);
  // Where a retry reads the documents from; without it the page refuses retries. Default: none
  std::optional<MongoOptions> mongo;
  // The mapping apply runs with, which a retry maps the document with. Default: automatic
  MappingConfig mapping;

  Status Validate() const;
};

// A retry request as the server sees it.
struct RetryRequest {
  bool mongo_given = false;
  std::string remote_addr;         // the client's address
  const char* host = nullptr;      // its headers; null when not sent
  const char* origin = nullptr;
  const char* token = nullptr;     // X-M2M-Token
  std::string expected_token;      // this process's
};

// Why the page refuses `r` (the rules above), as a sentence for the page; empty when it may retry.
std::string RetryRefusal(const RetryRequest& r);

class StatusPage {
 public:
  // Binds and starts answering; the first sample is taken by Run. Fails when the options are
  // invalid or the address cannot be bound.
  static Result<std::unique_ptr<StatusPage>> Start(StatusPageOptions options);
  ~StatusPage();

  int port() const;
  // Samples the pipeline until RequestStop; a failed sample is shown on the page, not an error.
  Status Run();
  void RequestStop() { stop_.store(true); }

 private:
  struct Impl;
  explicit StatusPage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace m2m::status
