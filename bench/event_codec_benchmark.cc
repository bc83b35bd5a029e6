// The event codec's cost per event on the shapes capture and apply see most: an insert of an order
// (about 600 bytes of BSON) and an update with its delta and looked-up document. Capture pays
// FromChangeStreamDocument + EncodeKey + EncodeValue per event, apply DecodeEvent.
//   build/bench/event_codec_benchmark
#include <benchmark/benchmark.h>

#include <string>

#include "m2m/bson_document.h"
#include "m2m/event_codec.h"

namespace {

constexpr const char* kOrder = R"({"_id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}, "customer": {"name": "Ada Lovelace",
  "email": "ada@example.com", "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH"}},
  "status": "paid", "total": {"$numberDecimal": "1234.50"}, "placed": {"$date": "2026-12-01T10:00:00Z"},
  "items": [{"sku": "A-100", "qty": 2, "price": 19.99, "note": "gift \"wrapped\"\n"},
            {"sku": "B-200", "qty": 1, "price": 5.5}, {"sku": "C-300", "qty": 10, "price": 0.25}],
  "tags": ["priority", "eu", "fragile"], "comment": "Livraison après 18h, merci — 🚚"})";

m2m::BsonDocument Raw(const std::string& operation, const std::string& extra) {
  std::string json = R"({"_id": {"_data": "8266A1F0C2000000012B022C0100296E5A1004ABCDEF"}, "operationType": ")" +
                     operation + R"(", "clusterTime": {"$timestamp": {"t": 1733040000, "i": 7}},
      "wallTime": {"$date": "2026-12-01T10:00:00Z"}, "ns": {"db": "shop", "coll": "orders"},
      "documentKey": {"_id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}}, "fullDocument": )" +
                     kOrder + extra + "}";
  return *m2m::BsonDocument::FromJson(json);
}

m2m::BsonDocument Insert() { return Raw("insert", ""); }
m2m::BsonDocument Update() {
  return Raw("update", R"(, "updateDescription": {"updatedFields": {"status": "shipped",
      "items.1.qty": 3}, "removedFields": ["tags"], "truncatedArrays": []})");
}

void FromChangeStream(benchmark::State& state, const m2m::BsonDocument& raw) {
  for (auto _ : state) benchmark::DoNotOptimize(m2m::FromChangeStreamDocument(raw.get()));
  state.SetItemsProcessed(state.iterations());
}

void Encode(benchmark::State& state, const m2m::BsonDocument& raw) {
  m2m::ChangeEvent event = *m2m::FromChangeStreamDocument(raw.get());
  m2m::EncodeOptions options;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m2m::EncodeKey(event));
    benchmark::DoNotOptimize(m2m::EncodeValue(event, options));
  }
  state.SetItemsProcessed(state.iterations());
}

void Decode(benchmark::State& state, const m2m::BsonDocument& raw) {
  m2m::ChangeEvent event = *m2m::FromChangeStreamDocument(raw.get());
  std::string key = m2m::EncodeKey(event), value = m2m::EncodeValue(event);
  for (auto _ : state) benchmark::DoNotOptimize(m2m::DecodeEvent(key, value));
  state.SetItemsProcessed(state.iterations());
}

void BM_FromChangeStreamInsert(benchmark::State& state) { FromChangeStream(state, Insert()); }
void BM_FromChangeStreamUpdate(benchmark::State& state) { FromChangeStream(state, Update()); }
void BM_EncodeInsert(benchmark::State& state) { Encode(state, Insert()); }
void BM_EncodeUpdate(benchmark::State& state) { Encode(state, Update()); }
void BM_DecodeInsert(benchmark::State& state) { Decode(state, Insert()); }
void BM_DecodeUpdate(benchmark::State& state) { Decode(state, Update()); }
BENCHMARK(BM_FromChangeStreamInsert);
BENCHMARK(BM_FromChangeStreamUpdate);
BENCHMARK(BM_EncodeInsert);
BENCHMARK(BM_EncodeUpdate);
BENCHMARK(BM_DecodeInsert);
BENCHMARK(BM_DecodeUpdate);

}  // namespace

BENCHMARK_MAIN();
