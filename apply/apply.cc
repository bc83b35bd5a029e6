#include "apply.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "barrier.h"
#include "bookkeeping.h"
#include "m2m/backoff.h"

namespace m2m::apply {
namespace {

using Clock = std::chrono::steady_clock;

// How often copies of a collection event parked for the copies of other members' partitions
// (barrier.h) are offered again: one small MySQL transaction each.
constexpr auto kParkedRetry = std::chrono::seconds(1);

// How long a batch waits for the consumer's next message before it counts the source as dry and
// commits: long enough to take what librdkafka is handing over, far below a commit's cost.
constexpr auto kDryLook = std::chrono::milliseconds(1);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// librdkafka's receive.message.max.bytes for apply: above the largest record capture can publish
// (its --max-message-bytes is at most librdkafka's message.max.bytes limit, 1,000,000,000), so a
// record of any size capture allows is fetched. Memory is taken per response, as large as it is.
constexpr char kReceiveMaxBytes[] = "1073741824";

}  // namespace

Status ApplyOptions::Validate() const {
  if (kafka.find("bootstrap.servers") == kafka.end()) return Status::Invalid("kafka.bootstrap.servers is not set");
  for (const char* key : {"group.id", "isolation.level", "enable.auto.commit", "auto.offset.reset"}) {
    if (kafka.count(key)) {
      return Status::Invalid(std::string("kafka.") + key + " is set by apply (see --group and docs/apply.md); remove it");
    }
  }
  if (topics.empty() == topic_pattern.empty()) return Status::Invalid("give either topics or a topic pattern");
  for (const std::string& t : topics) {
    if (t.empty()) return Status::Invalid("empty topic name in the topic list");
  }
  M2M_RETURN_NOT_OK(ApplierOptions::Validate());
  if (!mapping.spark_transforms.empty()) {
    std::string names;
    for (const std::string& t : mapping.spark_transforms) names += (names.empty() ? "" : ", ") + t;
    return Status::Invalid("mapping: transforms (" + names + ") run only in the Spark engine (docs/spark.md, "
                           "\"Transforms\"); apply would leave their tables unwritten: run mongo2mysql spark, "
                           "or remove the transforms");
  }
  if (max_batch_events <= 0) return Status::Invalid("apply.max_batch_events must be positive");
  if (max_batch_bytes == 0) return Status::Invalid("apply.max_batch_bytes must be positive");
  if (max_batch_time.count() <= 0) return Status::Invalid("apply.max_batch_time must be positive");
  if (retry_for.count() < 0) return Status::Invalid("apply.retry_for must not be negative");
  return Status::OK();
}


// One run of the apply loop; lives for the duration of Apply::Run. All of it runs on the Run thread,
// the rebalance callbacks included (they are called from inside KafkaConsumer::Poll).
struct Apply::Loop : RebalanceListener {
  const ApplyOptions& o;
  ApplyStats& stats;
  std::atomic<bool>& stop;
  std::unique_ptr<Applier> applier;

  // A partition this member owns.
  struct Owned {
    int64_t position = 0;           // the next offset expected from Kafka
    std::optional<int64_t> end;     // the last end the consumer reported
    // The offset after the last message Kafka delivered (applied, batched or held by the gate), and
    // its value when `end` was reported. Under read_committed the end lies past commit markers and
    // aborted records that are never delivered, so "applied up to the end" means applied up to
    // what had been delivered when the end was reported.
    int64_t received = 0;
    int64_t received_at_end = 0;
    // Its start offset has been read and sought. Until then nothing of it is applied (its messages
    // are dropped) and it is not at its end, whatever Kafka says.
    bool started = false;
    bool at_end() const { return started && end && position >= received_at_end; }
  };
  std::map<PartitionId, Owned> owned;
  bool assigned_once = false;
  // Nothing may be consumed until Rewind has (re)connected to MySQL and sought every owned partition
  // to its stored offset: at start, after any failed attempt, and after an assignment whose offsets
  // could not be read.
  bool rewind_needed = true;
  Clock::time_point batch_started;  // when the batch in flight got its first event
  bool reported_unknown_topic = false;  // warned once that a subscribed topic does not exist yet
  // Barriers held until the partitions before them have caught up (barrier.h), and the messages
  // queued behind them.
  BarrierGate gate;
  Clock::time_point parked_retry;  // when the copies parked in `gate` are offered again
  std::unique_ptr<KafkaInspector> inspector;  // reads partition ends for the gate; made when first needed
  std::unique_ptr<KafkaConsumer> consumer;  // last: destroyed first, while the listener still exists

  Loop(const ApplyOptions& options, ApplyStats& s, std::atomic<bool>& st, std::unique_ptr<Applier> a)
      : o(options), stats(s), stop(st), applier(std::move(a)) {
    // For monitoring tools only (kafka-consumer-groups --describe shows the lag); failures do not matter.
    applier->OnCommit([this](const std::map<PartitionId, int64_t>& next) {
      std::vector<TopicPartition> positions;
      for (const auto& [tp, offset] : next) positions.push_back({tp.first, tp.second, offset});
      (void)consumer->CommitAsync(positions);
    });
  }

  // ---- Where partitions start -----------------------------------------------------------------

  // Where a partition starts, and its offset in _m2m_offsets (none: nothing of it applied yet).
  struct Start {
    std::optional<int64_t> stored;
    int64_t offset = kOffsetBeginning;
  };

  // The start of each of `partitions`: its stored offset (the Applier owns them from now on), checked
  // against the offsets Kafka still holds (StartOffset in bookkeeping.h).
  Result<std::map<PartitionId, Start>> StartOffsets(const std::vector<PartitionId>& partitions) {
    applier->Disown();
    M2M_ASSIGN_OR_RETURN(auto stored, applier->Own(partitions));
    std::vector<PartitionId> applied;  // a partition never applied starts at the beginning, whatever it is
    for (const auto& [tp, next] : stored) {
      if (next) applied.push_back(tp);
    }
    M2M_ASSIGN_OR_RETURN(auto ranges, ReadRanges(applied, /*skip_unknown_topics=*/true));
    std::map<PartitionId, Start> out;
    for (const PartitionId& tp : partitions) {
      Start& start = out[tp];
      start.stored = stored.at(tp);
      if (!start.stored) continue;
      start.offset = *start.stored;
      // A topic deleted under its owner: the next rebalance takes its partitions away, and any fetch
      // meanwhile is guarded by auto.offset.reset=error.
      auto range = ranges.find(tp);
      if (range == ranges.end()) continue;
      std::string lost;
      M2M_ASSIGN_OR_RETURN(start.offset, StartOffset(o.group, tp, start.stored, range->second.first,
                                                     range->second.end, o.accept_lost_events, &lost));
      if (!lost.empty()) spdlog::warn("apply {}: {}", o.group, lost);
    }
    return out;
  }

  void CountWaiting() {
    stats.partitions_waiting = std::count_if(owned.begin(), owned.end(), [](const auto& kv) { return !kv.second.started; });
  }

  // ---- Rebalancing (called from inside consumer->Poll) -----------------------------------------

  Status OnAssign(std::vector<TopicPartition>& partitions) override {
    owned.clear();
    gate.Reset();
    assigned_once = true;
    std::vector<PartitionId> ids;
    for (const TopicPartition& tp : partitions) ids.emplace_back(tp.topic, tp.partition);
    // rewind_needed: an earlier assignment of this Poll found MySQL away; its connection is not to be used.
    Result<std::map<PartitionId, Start>> starts = Status(StatusCode::kMysql, "MySQL not connected yet", true);
    if (!rewind_needed) starts = StartOffsets(ids);
    if (!starts.ok() && !starts.status().retriable()) return starts.status();
    if (!starts.ok()) {
      // MySQL (or the broker) is away. Failing the assignment would leave the partitions with this
      // member and unconsumed for good; they are taken, not started: Run starts them (Rewind) as soon
      // as it can. Meanwhile they sit at their ends, and whatever arrives from there is dropped.
      for (TopicPartition& tp : partitions) {
        owned[{tp.topic, tp.partition}];
        tp.offset = kOffsetEnd;
      }
      rewind_needed = true;
      CountWaiting();
      spdlog::warn("apply {}: assigned {} partitions, not started yet: cannot read their offsets: {}", o.group,
                   partitions.size(), starts.status().ToString());
      return Status::OK();
    }
    std::string where;
    for (TopicPartition& tp : partitions) {
      Owned& own = owned[{tp.topic, tp.partition}];
      const Start& start = starts->at({tp.topic, tp.partition});
      own.position = own.received = std::max<int64_t>(start.offset, 0);
      own.started = true;
      tp.offset = start.offset;
      where += (where.empty() ? "" : ", ") + PartitionName({tp.topic, tp.partition}) + "@" +
               (start.offset >= 0 ? std::to_string(start.offset) : std::string("start"));
    }
    CountWaiting();
    spdlog::info("apply {}: assigned {}", o.group, where.empty() ? "no partitions" : where);
    return Status::OK();
  }

  void OnRevoke(const std::vector<TopicPartition>& partitions) override {
    // Eager rebalancing takes every partition back; the batch in flight is abandoned (nothing of it
    // is in MySQL) and whoever gets its partitions redoes it from the stored offsets.
    if (applier->pending_events() > 0) {
      spdlog::info("apply {}: partitions revoked; abandoning a batch of {} events", o.group,
                   applier->pending_events());
    }
    applier->Disown();
    owned.clear();
    gate.Reset();
    CountWaiting();
  }

  // ---- Consuming -------------------------------------------------------------------------------

  // Where a message comes from: Kafka, or the gate (queued behind a barrier, or a barrier let go).
  enum class From { kKafka, kQueue, kReleased };

  Status Consume(KafkaMessage m, From from = From::kKafka) {
    PartitionId tp{m.topic, m.partition};
    auto found = owned.find(tp);
    // Not ours (any more), not started, or already consumed before a seek took effect.
    if (found == owned.end() || !found->second.started || m.offset < found->second.position) return Status::OK();
    if (from == From::kKafka && gate.Queued(tp)) {  // behind a barrier of its partition
      gate.Queue(std::move(m));
      return Status::OK();
    }
    M2M_ASSIGN_OR_RETURN(PreparedRecord record, applier->Prepare(std::move(m)));
    if (from != From::kReleased && record.barrier) {
      std::vector<PartitionId> ids;
      for (const auto& [id, own] : owned) ids.push_back(id);
      std::vector<PartitionId> undecided = gate.Undecided(record.key, ids);
      if (!undecided.empty()) {
        M2M_ASSIGN_OR_RETURN(auto ends, ReadEnds(undecided));
        gate.Hold(std::move(record.message), record.key, std::move(ends));
        return Status::OK();
      }
    }
    M2M_ASSIGN_OR_RETURN(bool arrived, applier->Arrive(record));
    if (!arrived) {  // other partitions, of other members maybe, have not reached their copies yet
      gate.Park(std::move(record.message), record.key);
      parked_retry = Clock::now() + kParkedRetry;
      return Status::OK();
    }
    const int64_t offset = record.message.offset;
    const std::optional<OrderKey> key = record.event ? std::optional<OrderKey>(record.key) : std::nullopt;
    const bool collection_event = record.collection_event;
    if (applier->pending_events() == 0) batch_started = Clock::now();
    M2M_RETURN_NOT_OK(applier->Add(std::move(record)));
    found->second.position = offset + 1;
    if (key) gate.Admitted(*key);
    if (collection_event) gate.Unpark();  // the copies parked here may have been waiting for this one
    return Status::OK();
  }

  // The offsets Kafka holds of each of `partitions`, from the broker; with `skip_unknown_topics`,
  // none for the partitions of topics the broker does not know.
  Result<std::map<PartitionId, KafkaInspector::Range>> ReadRanges(const std::vector<PartitionId>& partitions,
                                                                  bool skip_unknown_topics = false) {
    std::map<PartitionId, KafkaInspector::Range> out;
    if (partitions.empty()) return out;
    if (!inspector) {
      M2M_ASSIGN_OR_RETURN(inspector, KafkaInspector::Make(o.kafka, std::chrono::seconds(30)));
    }
    std::set<std::string> topics;
    for (const PartitionId& tp : partitions) topics.insert(tp.first);
    for (const std::string& topic : topics) {
      auto all = inspector->Ranges(topic);
      if (skip_unknown_topics && IsUnknownTopic(all.status())) continue;
      M2M_RETURN_NOT_OK(all.status());
      for (KafkaInspector::Range& range : *all) {
        PartitionId id{range.topic, range.partition};
        if (std::find(partitions.begin(), partitions.end(), id) != partitions.end()) out[id] = std::move(range);
      }
    }
    return out;
  }

  // The end (last stable offset) of each of `partitions`, from the broker.
  Result<std::map<PartitionId, int64_t>> ReadEnds(const std::vector<PartitionId>& partitions) {
    M2M_ASSIGN_OR_RETURN(auto ranges, ReadRanges(partitions));
    std::map<PartitionId, int64_t> ends;
    for (const auto& [tp, range] : ranges) ends[tp] = range.end;
    return ends;
  }

  // Pauses the partitions whose messages the gate let go (its byte bound), and fetches again, from
  // the first message let go, those whose queue has drained (barrier.h, TakeFlow).
  Status Throttle() {
    BarrierGate::Flow flow = gate.TakeFlow();
    if (flow.empty()) return Status::OK();
    for (const TopicPartition& tp : flow.pause) {
      spdlog::info("apply {}: {} bytes wait behind barriers; pausing {} until its queue drains", o.group,
                   gate.queued_bytes(), PartitionName({tp.topic, tp.partition}));
    }
    M2M_RETURN_NOT_OK(consumer->Pause(flow.pause));
    M2M_RETURN_NOT_OK(consumer->Seek(flow.seek));
    for (const TopicPartition& tp : flow.seek) {
      auto own = owned.find({tp.topic, tp.partition});
      if (own != owned.end()) own->second.end.reset();  // it lies past messages not applied yet
    }
    return consumer->Resume(flow.resume);
  }

  // How far each owned partition has been consumed, for the gate.
  std::map<PartitionId, int64_t> ConsumedPositions() const {
    std::map<PartitionId, int64_t> out;
    for (const auto& [tp, own] : owned) out[tp] = std::max(own.position, own.end.value_or(0));
    return out;
  }

  // Forgets the batch in flight and starts every owned partition again from its stored offset, with
  // a fresh connection and the schema read back from the server. Until it has succeeded, nothing is
  // consumed (rewind_needed).
  Status Rewind() {
    gate.Reset();
    rewind_needed = true;
    M2M_RETURN_NOT_OK(applier->Connect());
    std::vector<PartitionId> ids;
    for (const auto& [tp, own] : owned) ids.push_back(tp);
    M2M_ASSIGN_OR_RETURN(auto starts, StartOffsets(ids));
    std::vector<TopicPartition> positions;
    for (const auto& [tp, start] : starts) positions.push_back({tp.first, tp.second, start.offset});
    M2M_RETURN_NOT_OK(consumer->Seek(positions));
    std::string started;  // the partitions that were waiting
    for (auto& [tp, own] : owned) {
      const Start& start = starts.at(tp);
      if (!own.started) {
        started += (started.empty() ? "" : ", ") + PartitionName(tp) + "@" +
                   (start.offset >= 0 ? std::to_string(start.offset) : std::string("start"));
      }
      own.position = own.received = std::max<int64_t>(start.offset, 0);
      own.end.reset();
      own.started = true;
    }
    if (!started.empty()) spdlog::info("apply {}: started {}", o.group, started);
    rewind_needed = false;
    CountWaiting();
    return Status::OK();
  }

  // ---- The loop --------------------------------------------------------------------------------

  bool CaughtUp() const {
    return assigned_once && !rewind_needed && applier->pending_events() == 0 && !applier->writing() &&
           AllConsumed();
  }

  // Every message up to the ends the consumer reported is in the batch or committed.
  bool AllConsumed() const {
    return gate.empty() && std::all_of(owned.begin(), owned.end(), [](const auto& kv) { return kv.second.at_end(); });
  }

  bool BatchFull() const {
    return applier->pending_events() >= o.max_batch_events || applier->pending_bytes() >= o.max_batch_bytes;
  }

  // Consumes one batch and hands it to the Applier's writer (pipelining: the next batch is consumed,
  // decoded and mapped on this thread while MySQL takes the last one).
  Status Step() {
    while (!stop.load() && !rewind_needed && !BatchFull()) {
      const bool batching = applier->pending_events() > 0;
      const bool writing = applier->writing();
      auto waited = Clock::now() - batch_started;
      if (batching && waited >= o.max_batch_time) break;
      if (o.until_caught_up && CaughtUp()) break;
      M2M_RETURN_NOT_OK(Throttle());
      if (Clock::now() >= parked_retry && gate.Unpark()) parked_retry = Clock::now() + kParkedRetry;
      if (!gate.empty()) {
        gate.Release(ConsumedPositions());
        if (auto next = gate.Pop()) {
          M2M_RETURN_NOT_OK(Consume(std::move(next->message), next->released ? From::kReleased : From::kQueue));
          continue;
        }
      }
      // A batch closes as soon as the consumer has nothing more buffered (one short look), so an event
      // that arrives alone is applied at once; under load the queue never runs dry and the limits above
      // close it, as linger.ms does for Kafka's producer. Commits then come as fast as MySQL takes
      // them, each carrying what arrived during the last.
      auto wait = batching || writing ? kDryLook : std::chrono::milliseconds(200);
      auto polled = consumer->Poll(wait);
      if (IsUnknownTopic(polled.status())) {
        // Capture creates a collection's topic with its first event; a subscription may come first.
        spdlog::log(reported_unknown_topic ? spdlog::level::debug : spdlog::level::warn, "apply {}: {}", o.group,
                    polled.status().message());
        reported_unknown_topic = true;
        continue;
      }
      M2M_ASSIGN_OR_RETURN(auto m, std::move(polled));
      // Dry. While the last batch is still being written, the next one goes on filling: it could not
      // be written sooner. Else commit what the batch holds, or, idle, let Run report progress.
      if (!m) {
        if (writing && !applier->written()) continue;
        break;
      }
      if (m->end_of_partition) {
        // The end under read_committed may lie past a transaction marker, beyond the last message:
        // any end-of-partition notice means everything before it was delivered (librdkafka drops
        // notices from before a seek).
        auto own = owned.find({m->topic, m->partition});
        if (own != owned.end() && own->second.started) {
          own->second.end = m->offset;
          own->second.received_at_end = own->second.received;
        }
        // Everything up to the end is consumed: no reason to wait for the batch timer.
        if (o.until_caught_up && AllConsumed()) break;
        continue;
      }
      if (auto own = owned.find({m->topic, m->partition}); own != owned.end()) {
        own->second.received = std::max(own->second.received, m->offset + 1);
      }
      M2M_RETURN_NOT_OK(Consume(std::move(*m)));
    }
    return applier->CommitInBackground();
  }

  Status Setup() {
    KafkaConfig kc = o.kafka;
    kc["group.id"] = o.group;
    kc["isolation.level"] = "read_committed";
    kc["enable.auto.commit"] = "false";
    kc["enable.auto.offset.store"] = "false";
    kc["enable.partition.eof"] = "true";  // until_caught_up and the barriers' condition 3 (barrier.h)
    // Partitions start at offsets apply chooses (StartOffsets); a fetch that finds its offset gone
    // (retention overtook apply) must stop with the gap named, never jump elsewhere unnoticed: the
    // error makes Run rewind, and the rewind's StartOffsets names the gap.
    kc["auto.offset.reset"] = "error";
    kc.emplace("receive.message.max.bytes", kReceiveMaxBytes);
    // librdkafka prefetches up to 64 MiB by default, on top of the two batches apply holds (one
    // written, one filling). With 32 MiB apply drains as fast and peaks at 118 MB instead of 165
    // (bench/apply_bench.py); with 16 MiB the fetcher stalls on the full queue: a third slower.
    kc.emplace("queued.max.messages.kbytes", "32768");
    std::vector<std::string> subscription = o.topics;
    if (!o.topic_pattern.empty()) subscription = {"^" + o.topic_pattern};
    M2M_ASSIGN_OR_RETURN(consumer, KafkaConsumer::Make(kc, subscription, this));
    return Status::OK();
  }

  // What a failed attempt waits for, for the log.
  std::string Awaited(const Status& st) const {
    switch (st.code()) {
      case StatusCode::kMysql:
        return fmt::format("MySQL at {}:{}", o.mysql.host, o.mysql.port);
      case StatusCode::kKafka:
        return "Kafka at " + o.kafka.at("bootstrap.servers");
      case StatusCode::kMongo:
        return "MongoDB";
      default:
        return "the next attempt";
    }
  }

  Status Run() {
    M2M_RETURN_NOT_OK(Setup());
    spdlog::info("apply {}: consuming {} into MySQL database {}", o.group,
                 o.topic_pattern.empty() ? fmt::format("{}", fmt::join(o.topics, ",")) : "^" + o.topic_pattern,
                 o.mysql.database);
    auto last_report = Clock::now();
    int64_t reported_events = 0;
    Backoff backoff;
    std::optional<Clock::time_point> failing_since;  // the first failure since the last successful step
    while (!stop.load()) {
      const bool rewinding = rewind_needed;
      Status st = rewinding ? Rewind() : Step();
      if (!st.ok()) {
        applier->Abandon();
        rewind_needed = true;
        if (!st.retriable()) return st;
        auto now = Clock::now();
        if (!failing_since) failing_since = now;
        double failing = std::chrono::duration<double>(now - *failing_since).count();
        if (o.retry_for.count() > 0 && now - *failing_since >= o.retry_for) {
          return st.WithContext(fmt::format("gave up after {:.0f} s of failed attempts (--retry-for {})", failing,
                                            o.retry_for.count()));
        }
        stats.retries++;
        stats.RecordLag(consumer->Lag());
        spdlog::warn("apply {}: {}; waiting for {}: next attempt in {:.1f} s, then redoing from the stored offsets "
                     "(failing for {:.0f} s{})",
                     o.group, st.ToString(), Awaited(st), backoff.next().count() / 1000.0, failing,
                     o.retry_for.count() > 0 ? fmt::format(", giving up after {} s", o.retry_for.count()) : "");
        backoff.Wait(stop);
        continue;
      }
      if (rewinding) continue;
      if (failing_since) {
        spdlog::info("apply {}: working again after {:.0f} s of failed attempts", o.group,
                     std::chrono::duration<double>(Clock::now() - *failing_since).count());
      }
      failing_since.reset();
      backoff.Reset();
      stats.ready = true;
      stats.RecordLag(consumer->Lag());
      if (o.until_caught_up && CaughtUp()) {
        spdlog::info("apply {}: caught up: {} events in {} batches, {} quarantined", o.group, stats.events.load(),
                     stats.batches.load(), stats.quarantined.load());
        return Status::OK();
      }
      if (Clock::now() - last_report >= o.progress_interval) {
        double secs = std::chrono::duration<double>(Clock::now() - last_report).count();
        int64_t events = stats.events.load();
        int64_t last = stats.last_event_ms.load();
        int64_t waiting = stats.partitions_waiting.load();
        spdlog::info("apply {}: {} events ({:.0f}/s), {} batches, {} quarantined, {} retries, lag {:.1f} s{}", o.group,
                     events, (events - reported_events) / secs, stats.batches.load(), stats.quarantined.load(),
                     stats.retries.load(), last ? (NowMs() - last) / 1000.0 : 0.0,
                     waiting ? fmt::format(", {} partitions not started yet", waiting) : "");
        last_report = Clock::now();
        reported_events = events;
      }
    }
    return applier->Commit();
  }
};

Apply::~Apply() = default;

Result<std::unique_ptr<Apply>> Apply::Make(ApplyOptions options) {
  M2M_RETURN_NOT_OK(options.Validate());
  return std::unique_ptr<Apply>(new Apply(std::move(options)));
}

Status Apply::Run() {
  M2M_ASSIGN_OR_RETURN(auto applier, Applier::Make(options_, &stats_));
  Loop loop(options_, stats_, stop_, std::move(applier));
  return loop.Run();
}

}  // namespace m2m::apply
