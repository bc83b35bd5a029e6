// Mapping speed on real-world shapes that test the target limits: documents wider than a table may
// be (most fields go to the overflow column) and sub-documents keyed by ids (one JSON column).
//   build/bench/mapping_benchmark
#include <benchmark/benchmark.h>

#include <string>

#include "m2m/bson_document.h"
#include "m2m/mapping.h"

namespace {

m2m::ChangeEvent Insert(const std::string& json) {
  m2m::ChangeEvent ev;
  ev.kind = m2m::EventKind::kInsert;
  ev.collection = "c";
  ev.after = *m2m::BsonDocument::FromJson(json);
  ev.document_key = *m2m::BsonDocument::FromJson(R"({"_id": 1})");
  return ev;
}

void MapAll(benchmark::State& state, const std::string& doc) {
  m2m::Mapper mapper = *m2m::Mapper::Make({});
  m2m::Catalog catalog;
  m2m::ChangeEvent ev = Insert(doc);
  for (auto _ : state) benchmark::DoNotOptimize(mapper.Map(ev, catalog));
  state.SetItemsProcessed(state.iterations());
}

void BM_WideDocument(benchmark::State& state) {
  std::string doc = R"({"_id": 1)";
  for (int i = 0; i < state.range(0); ++i) doc += ", \"field_" + std::to_string(i) + "\": " + std::to_string(i);
  MapAll(state, doc + "}");
}
BENCHMARK(BM_WideDocument)->Arg(100)->Arg(2000);

void BM_MapKeyedByIds(benchmark::State& state) {
  std::string doc = R"({"_id": 1, "name": "n", "tier_and_details": {)";
  for (int i = 0; i < state.range(0); ++i) {
    doc += (i ? ", " : "") + std::string("\"") + std::to_string(100000000 + i) + "0df078f33aa74a2e9696e05\": " +
           R"({"tier": "Bronze", "benefits": ["sports", "travel"], "active": true})";
  }
  MapAll(state, doc + "}}");
}
BENCHMARK(BM_MapKeyedByIds)->Arg(4)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
