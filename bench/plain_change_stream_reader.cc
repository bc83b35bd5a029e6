// The physical reference for capture's speed: a minimal libmongoc change-stream reader that reads N
// events from a start time and does nothing with them. capture_bench.py runs it on the same server
// and events as capture; the ratio of the two rates is the figure.
#include <CLI/CLI.hpp>
#include <mongoc/mongoc.h>

#include <chrono>
#include <cstdio>

int main(int argc, char** argv) {
  std::string uri = "mongodb://127.0.0.1:27017", db, collection;
  uint32_t start_t = 0;
  long events = 0;
  CLI::App app("Reads N change events from --start-at and prints the time taken.");
  app.add_option("--mongo-uri", uri);
  app.add_option("--db", db)->required();
  app.add_option("--collection", collection)->required();
  app.add_option("--start-at", start_t, "cluster time seconds")->required();
  app.add_option("--events", events)->required();
  CLI11_PARSE(app, argc, argv);

  mongoc_init();
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  mongoc_collection_t* coll = mongoc_client_get_collection(client, db.c_str(), collection.c_str());
  bson_t* opts = BCON_NEW("startAtOperationTime", BCON_TIMESTAMP(start_t, 0), "batchSize", BCON_INT32(1000),
                          "fullDocument", BCON_UTF8("updateLookup"));
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
