// libm2m_jni: the C++ apply core hosted by the Spark job's executors' JVMs: the tasks of its micro-batches
// (m2m/spark/BatchTasks.java) and the writer of its Real-time Mode (m2m/spark/RealtimeWriter.java;
// docs/spark.md). Both hand over each Kafka record's bytes as Spark's Kafka source gives them; decoding,
// mapping, SQL, the exactly-once transaction, quarantine and retries are the core's (RangeRun,
// range_applier.h), as in the native daemon.
//
// A micro-batch task (TaskRun) applies whole Kafka partitions of the batch, each with a RangeRun of its
// own on the task's Applier, each stopping before its first barrier that the driver did not release,
// and tells the driver how far each got (one line per partition: m2m_spark/core.py reads them).
//
// A task of Real-time Mode is long (an epoch, a minute by default) and Spark tells its writer nothing
// when the source is idle, so records cannot wait for the end of the task: a StreamRun commits the
// batch in flight when it is full (RangeOptions' events and bytes), or from a flush thread of its own
// once its oldest record has waited max_batch_ms (the linger of native apply's --max-batch-ms).
// Each commit stores the partitions' next offsets with the rows, so a task commits many times in an
// epoch and a replayed epoch skips what was applied; Spark's epoch ids play no part.
//
// Barriers (barrier.h) are not released here: a task cannot see the other partitions, so a
// StreamRun commits what precedes its first barrier and reports it held; the writer fails the query
// with BarrierHeld, and the job applies the barrier in micro-batch rounds, which order them
// (docs/spark.md).
//
// Errors: a Status that is not OK throws m2m.spark.ApplyException with its message.
#include <fmt/format.h>
#include <jni.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "applier.h"
#include "host_options.h"
#include "range_applier.h"

using namespace m2m;
using namespace m2m::apply;

namespace {

using Clock = std::chrono::steady_clock;

// An Applier with the counters it writes (they must outlive it).
struct Hosted {
  ApplyStats stats;
  std::unique_ptr<Applier> applier;
};

// Appliers idle between tasks, per settings: a task of the next epoch takes one, with its MySQL
// connection and catalog, as the micro-batch mode's Python workers keep theirs. Tasks of one
// executor run at once, each with an Applier of its own (an Applier serves one thread at a time).
class Pool {
 public:
  static Pool& Get() {
    // Never destroyed: at the JVM's exit, task threads may still be using Appliers taken from it.
    static Pool* pool = new Pool;
    return *pool;
  }

  Result<std::unique_ptr<Hosted>> Take(const std::map<std::string, std::string>& settings) {
    std::string key = Key(settings);
    {
      std::lock_guard lock(mu_);
      auto& idle = idle_[key];
      if (!idle.empty()) {
        std::unique_ptr<Hosted> hosted = std::move(idle.back());
        idle.pop_back();
        return hosted;
      }
    }
    M2M_ASSIGN_OR_RETURN(ApplierOptions options, SparkApplierOptions(settings));
    auto hosted = std::make_unique<Hosted>();
    M2M_ASSIGN_OR_RETURN(hosted->applier, Applier::Make(std::move(options), &hosted->stats));
    return hosted;
  }

  void Give(const std::map<std::string, std::string>& settings, std::unique_ptr<Hosted> hosted) {
    std::lock_guard lock(mu_);
    idle_[Key(settings)].push_back(std::move(hosted));
  }

 private:
  static std::string Key(const std::map<std::string, std::string>& settings) {
    std::string key;
    for (const auto& [k, v] : settings) key += std::to_string(k.size()) + ":" + k + std::to_string(v.size()) + ":" + v;
    return key;
  }

  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Hosted>>> idle_;
};

// A task's records into MySQL.
class Run {
 public:
  virtual ~Run() = default;
  // Adds a record; returns the barrier it stopped before when the run reports it at once (Real-time Mode).
  virtual Result<std::optional<OrderKey>> Process(KafkaMessage record) = 0;
  // Ends the task: commits what remains when `commit` (the task ended well), else drops it (Spark failed
  // the task; a later task redoes it from the stored offsets). Returns the Applier to the pool when it is sound.
  virtual Status Close(bool commit) = 0;
};

// One micro-batch task's Kafka partitions (whole offset ranges, each contiguous in the task's input).
//
// Thread safety: the task's thread only.
class TaskRun final : public Run {
 public:
  TaskRun(std::map<std::string, std::string> settings, std::unique_ptr<Hosted> hosted, RangeOptions options)
      : settings_(std::move(settings)), hosted_(std::move(hosted)), options_(std::move(options)) {}

  Result<std::optional<OrderKey>> Process(KafkaMessage record) override {
    M2M_RETURN_NOT_OK(failed_);
    PartitionId id{record.topic, record.partition};
    if (current_ == nullptr || current_id_ != id) {
      auto [it, added] = runs_.try_emplace(id);
      if (added) it->second = std::make_unique<RangeRun>(*hosted_->applier, options_);
      current_ = it->second.get();
      current_id_ = std::move(id);
    }
    if (!current_->held()) {  // a held partition's later records wait for a round that releases its barrier
      std::vector<KafkaMessage> one;
      one.push_back(std::move(record));
      failed_ = current_->Feed(std::move(one));
    }
    M2M_RETURN_NOT_OK(failed_);
    return std::optional<OrderKey>();
  }

  // Commits what remains; a line per partition: topic, partition, records, skipped, retries, and the
  // barrier's t, i, rank and offset when held (empty fields otherwise), tab-separated.
  Result<std::string> Finish() {
    M2M_RETURN_NOT_OK(failed_);
    std::string out;
    for (auto& [id, run] : runs_) {
      Result<RangeOutcome> outcome = run->Finish();
      if (!outcome.ok()) {
        failed_ = outcome.status();
        return failed_;
      }
      const RangeOutcome& o = *outcome;
      out += fmt::format("{}\t{}\t{}\t{}\t{}", id.first, id.second, o.records, o.skipped, o.retries);
      out += o.held ? fmt::format("\t{}\t{}\t{}\t{}\n", o.held->t, o.held->i, static_cast<int>(o.held->rank),
                                  o.held->offset)
                    : "\t\t\t\t\n";
    }
    finished_ = true;
    return out;
  }

  Status Close(bool commit) override {
    if (!failed_.ok()) return commit ? failed_ : Status::OK();  // thrown already when not committing
    if (commit && !finished_) M2M_RETURN_NOT_OK(Finish().status());
    if (!commit) hosted_->applier->Abandon();
    runs_.clear();  // before the Applier they use goes back
    Pool::Get().Give(settings_, std::move(hosted_));
    return Status::OK();
  }

 private:
  const std::map<std::string, std::string> settings_;
  std::unique_ptr<Hosted> hosted_;
  const RangeOptions options_;
  std::map<PartitionId, std::unique_ptr<RangeRun>> runs_;
  RangeRun* current_ = nullptr;  // the run of the partition whose records are coming in
  PartitionId current_id_;
  Status failed_;  // the first failure: every later call returns it
  bool finished_ = false;
};

// One task's records (one Kafka partition of an epoch) into MySQL.
//
// Thread safety: Process and Close are called by the task's thread, the flush thread commits; both go
// through mu_, so the Applier and the RangeRun are used by one thread at a time.
class StreamRun final : public Run {
 public:
  StreamRun(std::map<std::string, std::string> settings, std::unique_ptr<Hosted> hosted, RangeOptions options,
            std::chrono::milliseconds linger)
      : settings_(std::move(settings)),
        hosted_(std::move(hosted)),
        run_(*hosted_->applier, std::move(options)),
        linger_(linger),
        flusher_([this] { FlushLoop(); }) {}

  ~StreamRun() { StopFlusher(); }

  // Adds a record; returns the barrier it stopped before, if it is one (what preceded it is committed).
  Result<std::optional<OrderKey>> Process(KafkaMessage record) override {
    std::lock_guard lock(mu_);
    M2M_RETURN_NOT_OK(failed_);
    std::vector<KafkaMessage> one;
    one.push_back(std::move(record));
    Status st = run_.Feed(std::move(one));
    if (st.ok() && run_.held()) {
      // RangeRun::Finish commits the batch in flight; the run stays usable (it only reports then).
      Result<RangeOutcome> outcome = run_.Finish();
      if (outcome.ok()) return outcome->held;
      st = outcome.status();
    }
    if (!st.ok()) {
      failed_ = st;
      return st;
    }
    if (hosted_->applier->pending_events() == 0) {
      due_.reset();  // committed (the batch filled up), or the record was applied before
    } else if (!due_) {
      due_ = Clock::now() + linger_;
      wake_.notify_one();
    }
    return std::optional<OrderKey>();
  }

  Status Close(bool commit) override {
    StopFlusher();
    std::lock_guard lock(mu_);
    if (!failed_.ok()) return commit ? failed_ : Status::OK();  // thrown already when not committing
    if (commit) {
      M2M_RETURN_NOT_OK(run_.Finish().status());
    } else {
      hosted_->applier->Abandon();
    }
    // Only a sound Applier goes back: after a failure its connection and batch are in an unknown state.
    Pool::Get().Give(settings_, std::move(hosted_));
    return Status::OK();
  }

 private:
  void FlushLoop() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (!due_) {
        wake_.wait(lock);
      } else if (Clock::now() < *due_) {
        wake_.wait_until(lock, *due_);
      } else {
        due_.reset();
        Result<RangeOutcome> outcome = run_.Finish();  // commits the batch in flight
        if (!outcome.ok()) failed_ = outcome.status();
      }
    }
  }

  void StopFlusher() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (flusher_.joinable()) flusher_.join();
  }

  const std::map<std::string, std::string> settings_;
  std::unique_ptr<Hosted> hosted_;
  RangeRun run_;
  const std::chrono::milliseconds linger_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::optional<Clock::time_point> due_;  // when the batch in flight must be committed; none when empty
  Status failed_;                         // the first failure, from either thread: every later call returns it
  bool stopping_ = false;
  std::thread flusher_;  // last: started once everything above is constructed
};

void Throw(JNIEnv* env, const char* cls, const std::string& message) {
  if (env->ExceptionCheck()) return;
  jclass type = env->FindClass(cls);
  if (type != nullptr) env->ThrowNew(type, message.c_str());
}

void Throw(JNIEnv* env, const Status& st) { Throw(env, "m2m/spark/ApplyException", st.ToString()); }

std::string String(JNIEnv* env, jstring s) {
  const char* chars = env->GetStringUTFChars(s, nullptr);
  std::string out(chars);
  env->ReleaseStringUTFChars(s, chars);
  return out;
}

std::optional<std::string> Bytes(JNIEnv* env, jbyteArray a) {
  if (a == nullptr) return std::nullopt;
  std::string out(static_cast<size_t>(env->GetArrayLength(a)), '\0');
  env->GetByteArrayRegion(a, 0, static_cast<jsize>(out.size()), reinterpret_cast<jbyte*>(out.data()));
  return out;
}

// How a held barrier is named to the driver's log and the query's error.
std::string Describe(const OrderKey& k) {
  static const char* const kRank[] = {"collection event", "snapshot read", "change"};
  return fmt::format("{} {}[{}]@{} (cluster time {}.{})", kRank[static_cast<int>(k.rank)], k.partition.first,
                     k.partition.second, k.offset, k.t, k.i);
}

// The barriers a micro-batch round releases: a line each of t, i, rank, topic, partition and offset,
// tab-separated (m2m_spark/core.py).
Result<std::set<OrderKey>> Released(const std::string& text) {
  std::set<OrderKey> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    OrderKey k;
    int rank = -1;
    fields >> k.t >> k.i >> rank >> k.partition.first >> k.partition.second >> k.offset;
    if (!fields || rank < 0 || rank > static_cast<int>(OrderKey::Rank::kDocument)) {
      return Status::Invalid("a released barrier is not t i rank topic partition offset: " + line);
    }
    k.rank = static_cast<OrderKey::Rank>(rank);
    out.insert(std::move(k));
  }
  return out;
}

}  // namespace

extern "C" {

// The library is m2m_spark/jvm/libm2m_jni.so in the wheel, libmariadb's plugins beside it.
JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM*, void*) {
  UseBundledMariadbPlugins("mariadb-plugins");
  return JNI_VERSION_1_8;
}

// settings: keys and values alternately (host_options.h). max_batch_ms -1: a micro-batch task (TaskRun),
// releasing the barriers of `release`; else a task of Real-time Mode (StreamRun).
JNIEXPORT jlong JNICALL Java_m2m_spark_Core_open(JNIEnv* env, jclass, jobjectArray settings, jstring release,
                                                 jint max_batch_events, jlong max_batch_bytes, jint max_batch_ms,
                                                 jint retry_for_seconds, jstring log_level) {
  std::map<std::string, std::string> s;
  jsize n = env->GetArrayLength(settings);
  for (jsize i = 0; i + 1 < n; i += 2) {
    auto k = static_cast<jstring>(env->GetObjectArrayElement(settings, i));
    auto v = static_cast<jstring>(env->GetObjectArrayElement(settings, i + 1));
    s[String(env, k)] = String(env, v);
    env->DeleteLocalRef(k);
    env->DeleteLocalRef(v);
  }
  if (max_batch_events <= 0 || max_batch_bytes <= 0 || max_batch_ms < -1) {
    Throw(env, Status::Invalid("max_batch_events and max_batch_bytes must be positive, max_batch_ms -1 (a micro-batch "
                               "task) or not negative"));
    return 0;
  }
  Result<std::set<OrderKey>> released = Released(String(env, release));
  if (!released.ok()) {
    Throw(env, released.status());
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(String(env, log_level)));
  Result<std::unique_ptr<Hosted>> hosted = Pool::Get().Take(s);
  if (!hosted.ok()) {
    Throw(env, hosted.status());
    return 0;
  }
  RangeOptions options{.release = std::move(*released),
                       .max_batch_events = max_batch_events,
                       .max_batch_bytes = static_cast<size_t>(max_batch_bytes),
                       .retry_for = std::chrono::seconds(retry_for_seconds)};
  Run* run = max_batch_ms < 0 ? static_cast<Run*>(new TaskRun(std::move(s), std::move(*hosted), std::move(options)))
                              : new StreamRun(std::move(s), std::move(*hosted), std::move(options),
                                              std::chrono::milliseconds(max_batch_ms));
  return reinterpret_cast<jlong>(run);
}

// Returns null, or the barrier the record is (Describe) when the run stopped before it.
JNIEXPORT jstring JNICALL Java_m2m_spark_Core_process(JNIEnv* env, jclass, jlong handle, jstring topic,
                                                      jint partition, jlong offset, jbyteArray key, jbyteArray value,
                                                      jlong timestamp_ms) {
  KafkaMessage m;
  m.topic = String(env, topic);
  m.partition = partition;
  m.offset = offset;
  m.key = Bytes(env, key);
  m.value = Bytes(env, value);
  m.timestamp_ms = timestamp_ms;
  Result<std::optional<OrderKey>> held = reinterpret_cast<Run*>(handle)->Process(std::move(m));
  if (!held.ok()) {
    Throw(env, held.status());
    return nullptr;
  }
  return *held ? env->NewStringUTF(Describe(**held).c_str()) : nullptr;
}

// A micro-batch task's outcome (TaskRun::Finish).
JNIEXPORT jstring JNICALL Java_m2m_spark_Core_finish(JNIEnv* env, jclass, jlong handle) {
  auto* task = dynamic_cast<TaskRun*>(reinterpret_cast<Run*>(handle));
  Result<std::string> outcome = task ? task->Finish() : Status::Invalid("finish: not a micro-batch task's run");
  if (!outcome.ok()) {
    Throw(env, outcome.status());
    return nullptr;
  }
  return env->NewStringUTF(outcome->c_str());
}

// Ends the run (commit: the task ended well) and frees it, whatever happens.
JNIEXPORT void JNICALL Java_m2m_spark_Core_close(JNIEnv* env, jclass, jlong handle, jboolean commit) {
  std::unique_ptr<Run> run(reinterpret_cast<Run*>(handle));
  Status st = run->Close(commit);
  if (!st.ok()) Throw(env, st);
}

}  // extern "C"
