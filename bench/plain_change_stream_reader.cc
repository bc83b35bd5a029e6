// The physical reference for capture's speed: a minimal libmongoc change-stream reader that reads N
// events from a start point and does nothing with them. capture_bench.py runs it on the same server
// and events as capture; the ratio of the two rates is the figure. The start point is a cluster time
// (--start-at) or a resume token (--start-after / --resume-after, the token as Extended JSON, e.g.
// from capture's checkpoint), so a resumed capture can be compared with a reader resumed the same way.
#include <CLI/CLI.hpp>
#include <mongoc/mongoc.h>

#include <chrono>
#include <cstdio>

int main(int argc, char** argv) {
  std::string uri = "mongodb://127.0.0.1:27017", db, collection, start_after, resume_after;
  uint32_t start_t = 0;
  long events = 0;
  CLI::App app("Reads N change events from a start point and prints the count and the seconds taken.");
  app.add_option("--mongo-uri", uri);
  app.add_option("--db", db)->required();
  app.add_option("--collection", collection)->required();
  auto* at = app.add_option("--start-at", start_t, "cluster time seconds");
  auto* after = app.add_option("--start-after", start_after, "resume token (Extended JSON): startAfter");
  auto* resume = app.add_option("--resume-after", resume_after, "resume token (Extended JSON): resumeAfter");
  at->excludes(after)->excludes(resume);
  after->excludes(resume);
  app.add_option("--events", events)->required();
  CLI11_PARSE(app, argc, argv);
  if (!*at && !*after && !*resume) {
    std::fprintf(stderr, "one of --start-at, --start-after, --resume-after is required\n");
    return 2;
  }

  mongoc_init();
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  mongoc_collection_t* coll = mongoc_client_get_collection(client, db.c_str(), collection.c_str());
  bson_t* opts = BCON_NEW("batchSize", BCON_INT32(1000), "fullDocument", BCON_UTF8("updateLookup"));
  if (*at) {
    BSON_APPEND_TIMESTAMP(opts, "startAtOperationTime", start_t, 0);
  } else {
    const std::string& json = *after ? start_after : resume_after;
    bson_error_t error;
    bson_t* token = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()), json.size(), &error);
    if (!token) {
      std::fprintf(stderr, "the resume token is not JSON: %s\n", error.message);
      return 2;
    }
    BSON_APPEND_DOCUMENT(opts, *after ? "startAfter" : "resumeAfter", token);
    bson_destroy(token);
  }
  bson_t pipeline = BSON_INITIALIZER;
  auto started = std::chrono::steady_clock::now();
  mongoc_change_stream_t* stream = mongoc_collection_watch(coll, &pipeline, opts);
  const bson_t* event;
  long n = 0;
  bson_error_t error;
  while (n < events) {
    if (mongoc_change_stream_next(stream, &event)) {
      ++n;
    } else if (mongoc_change_stream_error_document(stream, &error, nullptr)) {
      std::fprintf(stderr, "change stream error: %s\n", error.message);
      return 1;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%ld %.3f\n", n, seconds);
  mongoc_change_stream_destroy(stream);
  bson_destroy(opts);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  mongoc_cleanup();
  return 0;
}
