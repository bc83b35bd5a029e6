#include "m2m/kafka_client.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "m2m/backoff.h"

namespace m2m {
namespace {

Status KafkaStatus(rd_kafka_resp_err_t err, std::string_view what, bool retriable = false) {
  std::string message(what);
  message += ": ";
  message += rd_kafka_err2str(err);
  return Status(StatusCode::kKafka, std::move(message), retriable, err);
}

Status KafkaStatus(rd_kafka_error_t* error, std::string_view what) {
  if (error == nullptr) return Status::OK();
  std::string message(what);
  message += ": ";
  message += rd_kafka_error_string(error);
  bool fatal = rd_kafka_error_is_fatal(error);
  // An abortable error voids only the open transaction: after AbortTransaction the producer goes on,
  // so its work can be redone from the last commit, like that of a retriable one.
  bool abortable = rd_kafka_error_txn_requires_abort(error);
  if (fatal) message += " (fatal: restart from the last checkpoint)";
  else if (abortable) message += " (the transaction must be aborted)";
  Status st(StatusCode::kKafka, std::move(message), (rd_kafka_error_is_retriable(error) || abortable) && !fatal,
            rd_kafka_error_code(error));
  rd_kafka_error_destroy(error);
  return st;
}

// Makes a transaction call (commit or abort, given the time it may block) until librdkafka settles
// it. A retriable error, a timeout above all, means the call goes on in the background and must be
// made again, not replaced by another: an abort after a commit that timed out fails with "Conflicting
// commit_transaction API call is already in progress". Within one transaction timeout of the first
// failure librdkafka has timed out every record of the transaction (message.timeout.ms is capped at
// transaction.timeout.ms), which makes the commit abortable; a call still retriable then is reported.
template <typename Call>
Status SettleTransaction(Call call, std::chrono::milliseconds timeout, std::chrono::milliseconds transaction_timeout,
                         std::string_view what) {
  const std::atomic<bool> never_stop{false};
  Backoff backoff;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  while (true) {
    auto attempt = timeout;
    if (deadline) {
      attempt = std::min(attempt, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      *deadline - std::chrono::steady_clock::now()));
    }
    rd_kafka_error_t* error = call(static_cast<int>(std::max<int64_t>(attempt.count(), 0)));
    if (error == nullptr) return Status::OK();
    auto now = std::chrono::steady_clock::now();
    if (!deadline) deadline = now + transaction_timeout;
    bool resumable = rd_kafka_error_is_retriable(error) && !rd_kafka_error_txn_requires_abort(error) &&
                     !rd_kafka_error_is_fatal(error);
    if (!resumable || now + backoff.next() >= *deadline) return KafkaStatus(error, what);
    rd_kafka_error_destroy(error);
    backoff.Wait(never_stop);
  }
}

// The producer's transaction.timeout.ms.
std::chrono::milliseconds TransactionTimeout(rd_kafka_t* rk) {
  char value[32];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(rd_kafka_conf(rk), "transaction.timeout.ms", value, &size) != RD_KAFKA_CONF_OK) {
    return std::chrono::milliseconds(60000);  // librdkafka's default
  }
  return std::chrono::milliseconds(std::atoll(value));
}

// Whether the broker (or librdkafka) refused a record for its size or content, which no retry changes.
bool RefusedForWhatItIs(const Status& delivery) {
  switch (static_cast<rd_kafka_resp_err_t>(delivery.native_code())) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD: return true;
    default: return false;
  }
}

// Builds an rd_kafka_conf_t; an unknown or invalid property is an error naming the key.
Result<rd_kafka_conf_t*> MakeConf(const KafkaConfig& config) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [key, value] : config) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::Invalid("kafka." + key + ": " + errstr);
    }
  }
  return conf;
}

Result<rd_kafka_t*> MakeHandle(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);  // owns conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::Invalid(std::string("cannot create Kafka client: ") + errstr);
  }
  return rk;
}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

}  // namespace

// ---------------------------------------------------------------------------------------------------
struct KafkaAdmin::Impl {
  HandlePtr rk;
  rd_kafka_queue_t* queue = nullptr;
  ~Impl() {
    if (queue) rd_kafka_queue_destroy(queue);
  }

  // Waits for the admin result event of type `type` and returns the per-topic error, if any.
  Status WaitTopicResult(rd_kafka_event_type_t type, std::chrono::milliseconds timeout,
                         std::string_view what, bool exists_ok) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()));
    if (ev == nullptr) return KafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, what, true);
    Status st;
    if (rd_kafka_event_error(ev)) {
      st = Status(StatusCode::kKafka, std::string(what) + ": " + rd_kafka_event_error_string(ev), true,
                  rd_kafka_event_error(ev));
    } else {
      const rd_kafka_topic_result_t** results = nullptr;
      size_t n = 0;
      if (type == RD_KAFKA_EVENT_CREATETOPICS_RESULT) {
        results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      } else {
        results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
      }
      for (size_t i = 0; i < n && st.ok(); ++i) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        if (exists_ok && err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        st = Status(StatusCode::kKafka, std::string(what) + ": " + (msg ? msg : rd_kafka_err2str(err)),
                    false, err);
      }
    }
    rd_kafka_event_destroy(ev);
    return st;
  }

  // One DescribeConfigs request for a topic's settings.
  Result<KafkaConfig> DescribeTopic(const std::string& name, std::chrono::milliseconds timeout) {
    std::string what = "reading the settings of topic " + name;
    rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str());
    rd_kafka_DescribeConfigs(rk.get(), &resource, 1, nullptr, queue);
    rd_kafka_ConfigResource_destroy(resource);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()));
    if (ev == nullptr) return KafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, what, true);
    std::unique_ptr<rd_kafka_event_t, void (*)(rd_kafka_event_t*)> guard(ev, rd_kafka_event_destroy);
    if (rd_kafka_event_error(ev)) {
      return Status(StatusCode::kKafka, what + ": " + rd_kafka_event_error_string(ev), true, rd_kafka_event_error(ev));
    }
    size_t n = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    if (n != 1) return Status(StatusCode::kKafka, what + ": the broker answered for " + std::to_string(n) + " resources");
    if (rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(resources[0])) {
      const char* msg = rd_kafka_ConfigResource_error_string(resources[0]);
      return Status(StatusCode::kKafka, what + ": " + (msg ? msg : rd_kafka_err2str(err)), false, err);
    }
    size_t count = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[0], &count);
    KafkaConfig out;
    for (size_t i = 0; i < count; ++i) {
      const char* value = rd_kafka_ConfigEntry_value(entries[i]);
      if (value != nullptr) out[rd_kafka_ConfigEntry_name(entries[i])] = value;
    }
    return out;
  }
};

KafkaAdmin::KafkaAdmin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaAdmin::~KafkaAdmin() = default;

Result<std::unique_ptr<KafkaAdmin>> KafkaAdmin::Make(const KafkaConfig& config) {
  M2M_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, MakeConf(config));
  M2M_ASSIGN_OR_RETURN(rd_kafka_t * rk, MakeHandle(RD_KAFKA_PRODUCER, conf));
  auto impl = std::make_unique<Impl>();
  impl->rk.reset(rk);
  impl->queue = rd_kafka_queue_new(rk);
  return std::unique_ptr<KafkaAdmin>(new KafkaAdmin(std::move(impl)));
}

Status KafkaAdmin::CreateTopic(const std::string& name, int partitions, const KafkaConfig& topic_config,
                               std::chrono::milliseconds timeout) {
  char errstr[512];
  rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(name.c_str(), partitions, -1, errstr, sizeof errstr);
  if (topic == nullptr) return Status::Invalid("topic " + name + ": " + errstr);
  for (const auto& [key, value] : topic_config) {
    rd_kafka_NewTopic_set_config(topic, key.c_str(), value.c_str());
  }
  rd_kafka_CreateTopics(impl_->rk.get(), &topic, 1, nullptr, impl_->queue);
  rd_kafka_NewTopic_destroy(topic);
  return impl_->WaitTopicResult(RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout,
                                "creating topic " + name, /*exists_ok=*/true);
}

Result<KafkaConfig> KafkaAdmin::TopicConfig(const std::string& name, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto config = impl_->DescribeTopic(name, std::max(left, std::chrono::milliseconds(1)));
    // As in PartitionCount: a topic just created may be unknown to the broker for a moment.
    if (config.ok() || !IsUnknownTopic(config.status()) || std::chrono::steady_clock::now() >= deadline) return config;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Status KafkaAdmin::DeleteTopic(const std::string& name, std::chrono::milliseconds timeout) {
  rd_kafka_DeleteTopic_t* topic = rd_kafka_DeleteTopic_new(name.c_str());
  rd_kafka_DeleteTopics(impl_->rk.get(), &topic, 1, nullptr, impl_->queue);
  rd_kafka_DeleteTopic_destroy(topic);
  return impl_->WaitTopicResult(RD_KAFKA_EVENT_DELETETOPICS_RESULT, timeout,
                                "deleting topic " + name, /*exists_ok=*/false);
}

// ---------------------------------------------------------------------------------------------------
struct KafkaProducer::Impl {
  HandlePtr rk;
  std::chrono::milliseconds transaction_timeout{0};
  // Written by the delivery-report callback, which runs inside rd_kafka_poll/flush on our thread.
  Status first_delivery_error;

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    // Purged messages belong to a transaction we aborted ourselves: not a delivery failure.
    bool purged = msg->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || msg->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR && !purged && self->first_delivery_error.ok()) {
      self->first_delivery_error =
          KafkaStatus(msg->err, std::string("delivery to ") + rd_kafka_topic_name(msg->rkt) + " failed");
    }
  }
};

KafkaProducer::KafkaProducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaProducer::~KafkaProducer() = default;

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Make(const KafkaConfig& config) {
  auto impl = std::make_unique<Impl>();
  // Without idempotence a retried send (say the first one to a topic whose leader is not known yet)
  // lands behind the ones after it, breaking the per-key order Produce promises.
  KafkaConfig ordered = config;
  ordered.emplace("enable.idempotence", "true");
  M2M_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, MakeConf(ordered));
  rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDelivery);
  rd_kafka_conf_set_opaque(conf, impl.get());
  M2M_ASSIGN_OR_RETURN(rd_kafka_t * rk, MakeHandle(RD_KAFKA_PRODUCER, conf));
  impl->rk.reset(rk);
  impl->transaction_timeout = TransactionTimeout(rk);
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(std::move(impl)));
}

Status KafkaProducer::Produce(const std::string& topic, std::optional<std::string_view> key,
                              std::optional<std::string_view> value) {
  return ProduceTo(topic, RD_KAFKA_PARTITION_UA, key, value);
}

Status KafkaProducer::ProduceTo(const std::string& topic, int32_t partition, std::optional<std::string_view> key,
                                std::optional<std::string_view> value) {
  void* key_ptr = key ? const_cast<char*>(key->data()) : nullptr;
  size_t key_len = key ? key->size() : 0;
  void* value_ptr = value ? const_cast<char*>(value->data()) : nullptr;
  size_t value_len = value ? value->size() : 0;
  while (true) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key_ptr, key_len), RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    // A full local queue is back-pressure, not failure: serve delivery reports and try again.
    if (err == RD_KAFKA_RESP_ERR__STATE) {
      // A transactional producer refuses records after an error voided the open transaction; unless
      // that error was fatal, aborting the transaction makes it take records again.
      char reason[256];
      bool fatal = rd_kafka_fatal_error(impl_->rk.get(), reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR;
      return KafkaStatus(err, "producing to " + topic + (fatal ? std::string(" (fatal: ") + reason + ")"
                                                               : std::string(" (the transaction must be aborted)")),
                         !fatal);
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return KafkaStatus(err, "producing to " + topic);
    rd_kafka_poll(impl_->rk.get(), 100);
  }
  rd_kafka_poll(impl_->rk.get(), 0);
  return Status::OK();
}

Status KafkaProducer::Flush(std::chrono::milliseconds timeout) {
  rd_kafka_resp_err_t err = rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "flushing producer", true);
  Status st = std::move(impl_->first_delivery_error);
  impl_->first_delivery_error = Status::OK();
  return st;
}

Status KafkaProducer::InitTransactions(std::chrono::milliseconds timeout) {
  return KafkaStatus(rd_kafka_init_transactions(impl_->rk.get(), static_cast<int>(timeout.count())),
                     "initialising Kafka transactions");
}

Status KafkaProducer::BeginTransaction() {
  return KafkaStatus(rd_kafka_begin_transaction(impl_->rk.get()), "beginning a Kafka transaction");
}

Status KafkaProducer::CommitTransaction(std::chrono::milliseconds timeout) {
  rd_kafka_t* rk = impl_->rk.get();
  Status st = SettleTransaction([rk](int ms) { return rd_kafka_commit_transaction(rk, ms); }, timeout,
                                impl_->transaction_timeout, "committing a Kafka transaction");
  // The commit flushed every message; a delivery error recorded meanwhile means the broker refused
  // part of the transaction, which librdkafka reports through the commit as well (as abortable).
  Status delivery = std::move(impl_->first_delivery_error);
  impl_->first_delivery_error = Status::OK();
  // A record refused for what it is fails every retry of the transaction that holds it: its own
  // error, naming the topic and not retriable, is the one to report.
  if (!st.ok() && !delivery.ok() && RefusedForWhatItIs(delivery)) return delivery;
  return st.ok() ? delivery : st;
}

Status KafkaProducer::AbortTransaction(std::chrono::milliseconds timeout) {
  rd_kafka_t* rk = impl_->rk.get();
  Status st = SettleTransaction([rk](int ms) { return rd_kafka_abort_transaction(rk, ms); }, timeout,
                                impl_->transaction_timeout, "aborting a Kafka transaction");
  // Whatever failed inside the aborted transaction is void with it.
  impl_->first_delivery_error = Status::OK();
  return st;
}

// ---------------------------------------------------------------------------------------------------
struct KafkaConsumer::Impl {
  HandlePtr rk;
  RebalanceListener* listener = nullptr;
  // Set by the rebalance callback (inside rd_kafka_consumer_poll, on the polling thread); returned
  // by the next Poll.
  Status assign_error;
  ~Impl() {
    if (rk) rd_kafka_consumer_close(rk.get());
  }

  static std::vector<TopicPartition> ToVector(const rd_kafka_topic_partition_list_t* list) {
    std::vector<TopicPartition> out;
    for (int i = 0; i < list->cnt; ++i) {
      out.push_back({list->elems[i].topic, list->elems[i].partition, list->elems[i].offset});
    }
    return out;
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    std::vector<TopicPartition> list = ToVector(parts);
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      self->listener->OnRevoke(list);
      rd_kafka_assign(rk, nullptr);
      return;
    }
    Status st = self->listener->OnAssign(list);
    if (!st.ok()) {
      self->assign_error = std::move(st);
      rd_kafka_assign(rk, nullptr);
      return;
    }
    for (const TopicPartition& tp : list) {
      rd_kafka_topic_partition_list_find(parts, tp.topic.c_str(), tp.partition)->offset = tp.offset;
    }
    rd_kafka_resp_err_t assigned = rd_kafka_assign(rk, parts);
    if (assigned != RD_KAFKA_RESP_ERR_NO_ERROR) self->assign_error = KafkaStatus(assigned, "assigning partitions", true);
  }
};

namespace {

// Key, value and timestamp of a delivered record.
void CopyPayload(const rd_kafka_message_t* m, KafkaMessage& out) {
  if (m->key) out.key.emplace(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) out.value.emplace(static_cast<const char*>(m->payload), m->len);
  out.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
}

}  // namespace

KafkaConsumer::KafkaConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaConsumer::~KafkaConsumer() = default;

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Make(const KafkaConfig& config,
                                                           const std::vector<std::string>& topics,
                                                           RebalanceListener* listener) {
  if (config.find("group.id") == config.end()) return Status::Invalid("kafka.group.id is required");
  auto strategy = config.find("partition.assignment.strategy");
  if (listener && strategy != config.end() && strategy->second.find("cooperative") != std::string::npos) {
    return Status::Invalid("kafka.partition.assignment.strategy: " + strategy->second +
                           " is incremental; use range or roundrobin (eager), whose revocations end every "
                           "batch in flight before partitions move");
  }
  auto impl = std::make_unique<Impl>();
  impl->listener = listener;
  M2M_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, MakeConf(config));
  if (listener) {
    rd_kafka_conf_set_rebalance_cb(conf, &Impl::OnRebalance);
    rd_kafka_conf_set_opaque(conf, impl.get());
  }
  M2M_ASSIGN_OR_RETURN(rd_kafka_t * rk, MakeHandle(RD_KAFKA_CONSUMER, conf));
  impl->rk.reset(rk);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "subscribing");
  return std::unique_ptr<KafkaConsumer>(new KafkaConsumer(std::move(impl)));
}

Result<std::optional<KafkaMessage>> KafkaConsumer::Poll(std::chrono::milliseconds timeout) {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk.get(), static_cast<int>(timeout.count()));
  if (!impl_->assign_error.ok()) {
    if (m) rd_kafka_message_destroy(m);
    Status st = std::move(impl_->assign_error);
    impl_->assign_error = Status::OK();
    return st;
  }
  if (m == nullptr) return std::optional<KafkaMessage>{};
  std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard(m, rd_kafka_message_destroy);
  KafkaMessage out;
  if (m->rkt) out.topic = rd_kafka_topic_name(m->rkt);
  out.partition = m->partition;
  out.offset = m->offset;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    out.end_of_partition = true;
    return std::optional<KafkaMessage>(std::move(out));
  }
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    bool fatal = m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    return KafkaStatus(m->err, "consuming", !fatal);
  }
  CopyPayload(m, out);
  return std::optional<KafkaMessage>(std::move(out));
}

namespace {

using PartitionListPtr =
    std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>;

PartitionListPtr ToList(const std::vector<TopicPartition>& positions) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(positions.size())),
                        rd_kafka_topic_partition_list_destroy);
  for (const TopicPartition& tp : positions) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = tp.offset;
  }
  return list;
}

// The first per-partition error of a list librdkafka returned, naming the partition.
Status PartitionErrors(const rd_kafka_topic_partition_list_t* list, std::string_view what) {
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return KafkaStatus(list->elems[i].err, std::string(what) + " " + list->elems[i].topic + "[" +
                                                 std::to_string(list->elems[i].partition) + "]",
                         true);
    }
  }
  return Status::OK();
}

}  // namespace

Status KafkaConsumer::Seek(const std::vector<TopicPartition>& positions, std::chrono::milliseconds timeout) {
  if (positions.empty()) return Status::OK();
  PartitionListPtr list = ToList(positions);
  rd_kafka_error_t* error = rd_kafka_seek_partitions(impl_->rk.get(), list.get(), static_cast<int>(timeout.count()));
  if (error != nullptr && rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    // The fetcher did not confirm every seek in time (a busy machine, a rebalance; the 1-hour soak met
    // it once): where those partitions stand is unknown, and seeking them again settles it, so the
    // caller may redo its work from the stored offsets instead of exiting.
    Status st = KafkaStatus(rd_kafka_error_code(error), "seeking", /*retriable=*/true);
    rd_kafka_error_destroy(error);
    return st;
  }
  M2M_RETURN_NOT_OK(KafkaStatus(error, "seeking"));
  return PartitionErrors(list.get(), "seeking");
}

Status KafkaConsumer::Pause(const std::vector<TopicPartition>& partitions) {
  if (partitions.empty()) return Status::OK();
  PartitionListPtr list = ToList(partitions);
  // Per-partition errors name partitions no longer assigned: nothing to stop there.
  rd_kafka_resp_err_t err = rd_kafka_pause_partitions(impl_->rk.get(), list.get());
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? Status::OK() : KafkaStatus(err, "pausing partitions");
}

Status KafkaConsumer::Resume(const std::vector<TopicPartition>& partitions) {
  if (partitions.empty()) return Status::OK();
  PartitionListPtr list = ToList(partitions);
  rd_kafka_resp_err_t err = rd_kafka_resume_partitions(impl_->rk.get(), list.get());
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? Status::OK() : KafkaStatus(err, "resuming partitions");
}

Status KafkaConsumer::CommitAsync(const std::vector<TopicPartition>& positions) {
  if (positions.empty()) return Status::OK();
  PartitionListPtr list = ToList(positions);
  rd_kafka_resp_err_t err = rd_kafka_commit(impl_->rk.get(), list.get(), /*async=*/1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "committing offsets", true);
  return Status::OK();
}

std::map<std::pair<std::string, int32_t>, int64_t> KafkaConsumer::Lag() const {
  std::map<std::pair<std::string, int32_t>, int64_t> lag;
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(impl_->rk.get(), &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return lag;
  PartitionListPtr list(raw, rd_kafka_topic_partition_list_destroy);
  rd_kafka_position(impl_->rk.get(), list.get());
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    int64_t low = 0, high = 0;
    if (tp.offset < 0 ||
        rd_kafka_get_watermark_offsets(impl_->rk.get(), tp.topic, tp.partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    lag[{tp.topic, tp.partition}] = std::max<int64_t>(high - tp.offset, 0);
  }
  return lag;
}

namespace {

using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)>;

// A consumer that reads the committed records of partitions it assigns itself, reporting each
// partition's end, outside any consumer group.
Result<HandlePtr> MakeCommittedReader(const KafkaConfig& config) {
  KafkaConfig c = config;
  c.emplace("isolation.level", "read_committed");
  c.emplace("enable.auto.commit", "false");
  c.emplace("enable.partition.eof", "true");
  // A start before the log's beginning (deleted by retention) reads from the beginning.
  c.emplace("auto.offset.reset", "earliest");
  // assign() needs no group, but librdkafka's consumer wants a group.id to exist.
  c.emplace("group.id", "mongo2mysql-topic-reader");
  M2M_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, MakeConf(c));
  M2M_ASSIGN_OR_RETURN(rd_kafka_t * raw, MakeHandle(RD_KAFKA_CONSUMER, conf));
  HandlePtr rk(raw);
  rd_kafka_poll_set_consumer(rk.get());
  return rk;
}

// The broker's metadata of one topic; an error naming the topic when it does not exist.
Result<MetadataPtr> TopicMetadata(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "reading metadata of " + topic, true);
  MetadataPtr guard(md, rd_kafka_metadata_destroy);
  if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaStatus(md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                       "topic " + topic);
  }
  return guard;
}

}  // namespace

Result<int> KafkaAdmin::PartitionCount(const std::string& name, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto md = TopicMetadata(impl_->rk.get(), name, static_cast<int>(std::max<int64_t>(left.count(), 1)));
    if (md.ok()) return (*md)->topics[0].partition_cnt;
    // CreateTopics answers once the controller made the topic; a broker may serve metadata without
    // it for a moment longer.
    if (!IsUnknownTopic(md.status()) || std::chrono::steady_clock::now() >= deadline) return md.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool IsUnknownTopic(const Status& status) {
  return status.code() == StatusCode::kKafka && (status.native_code() == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                                                 status.native_code() == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC);
}

bool IsAuthorizationFailure(const Status& status) {
  return status.code() == StatusCode::kKafka &&
         (status.native_code() == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
          status.native_code() == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
}

// ---------------------------------------------------------------------------------------------------
Result<std::map<std::string, std::string>> ReadTopicToEnd(const KafkaConfig& config, const std::string& topic,
                                                          std::chrono::milliseconds timeout) {
  M2M_ASSIGN_OR_RETURN(HandlePtr rk, MakeCommittedReader(config));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  };

  M2M_ASSIGN_OR_RETURN(MetadataPtr md, TopicMetadata(rk.get(), topic, remaining_ms()));
  rd_kafka_resp_err_t err;

  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  int waiting = 0;
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    int32_t p = md->topics[0].partitions[i].id;
    int64_t low = 0, high = 0;
    err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, remaining_ms());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(parts);
      return KafkaStatus(err, "reading offsets of " + topic, true);
    }
    if (high > low) {
      rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      ++waiting;
    }
  }
  err = rd_kafka_assign(rk.get(), parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "assigning " + topic);

  std::map<std::string, std::string> latest;
  // Each partition reports EOF once it reaches its end (the last stable offset under read_committed).
  while (waiting > 0) {
    if (remaining_ms() == 0) return KafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, "reading " + topic + " to its end", true);
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), std::min(remaining_ms(), 500));
    if (m == nullptr) continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard(m, rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      --waiting;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(m->err, "reading " + topic, true);
    if (m->key == nullptr) continue;
    std::string key(static_cast<const char*>(m->key), m->key_len);
    if (m->payload == nullptr) latest.erase(key);
    else latest[key] = std::string(static_cast<const char*>(m->payload), m->len);
  }
  rd_kafka_consumer_close(rk.get());
  return latest;
}

// ---------------------------------------------------------------------------------------------------
struct KafkaInspector::Impl {
  HandlePtr rk;
  std::chrono::milliseconds timeout;
};

KafkaInspector::KafkaInspector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaInspector::~KafkaInspector() {
  if (impl_ && impl_->rk) rd_kafka_consumer_close(impl_->rk.get());
}

Result<std::unique_ptr<KafkaInspector>> KafkaInspector::Make(const KafkaConfig& config,
                                                             std::chrono::milliseconds timeout) {
  M2M_ASSIGN_OR_RETURN(HandlePtr rk, MakeCommittedReader(config));
  auto impl = std::make_unique<Impl>();
  impl->rk = std::move(rk);
  impl->timeout = timeout;
  return std::unique_ptr<KafkaInspector>(new KafkaInspector(std::move(impl)));
}

Result<std::vector<std::string>> KafkaInspector::ListTopics() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(impl_->rk.get(), 1, nullptr, &md, static_cast<int>(impl_->timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "listing topics", true);
  MetadataPtr guard(md, rd_kafka_metadata_destroy);
  std::vector<std::string> out;
  for (int i = 0; i < md->topic_cnt; ++i) out.emplace_back(md->topics[i].topic);
  return out;
}

Result<std::vector<TopicPartition>> KafkaInspector::Ends(const std::string& topic) {
  M2M_ASSIGN_OR_RETURN(auto ranges, Ranges(topic));
  std::vector<TopicPartition> out;
  for (const Range& r : ranges) out.push_back({r.topic, r.partition, r.end});
  return out;
}

Result<std::vector<KafkaInspector::Range>> KafkaInspector::Ranges(const std::string& topic) {
  int timeout_ms = static_cast<int>(impl_->timeout.count());
  M2M_ASSIGN_OR_RETURN(MetadataPtr md, TopicMetadata(impl_->rk.get(), topic, timeout_ms));
  std::vector<Range> out;
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    int32_t p = md->topics[0].partitions[i].id;
    int64_t low = 0, high = 0;
    // A read_committed handle asks for the last stable offset.
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(impl_->rk.get(), topic.c_str(), p, &low, &high, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "reading offsets of " + topic, true);
    out.push_back({topic, p, low, high});
  }
  std::sort(out.begin(), out.end(), [](const Range& a, const Range& b) { return a.partition < b.partition; });
  return out;
}

Result<std::vector<KafkaMessage>> KafkaInspector::Read(const TopicPartition& from, int64_t end, bool first_only) {
  std::vector<KafkaMessage> out;
  if (from.offset >= end) return out;
  PartitionListPtr list = ToList({from});
  rd_kafka_resp_err_t err = rd_kafka_assign(impl_->rk.get(), list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaStatus(err, "assigning " + from.topic);
  auto deadline = std::chrono::steady_clock::now() + impl_->timeout;
  Status st;
  while (true) {
    if (std::chrono::steady_clock::now() >= deadline) {
      st = KafkaStatus(RD_KAFKA_RESP_ERR__TIMED_OUT, "reading " + from.topic, true);
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk.get(), 200);
    if (m == nullptr) continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard(m, rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) break;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      st = KafkaStatus(m->err, "reading " + from.topic, true);
      break;
    }
    if (m->offset >= end) break;  // committed after `end` was read
    KafkaMessage msg{from.topic, m->partition, m->offset};
    CopyPayload(m, msg);
    out.push_back(std::move(msg));
    if (first_only) break;
  }
  rd_kafka_assign(impl_->rk.get(), nullptr);
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<KafkaMessage>> KafkaInspector::FirstRecord(const TopicPartition& from, int64_t end) {
  M2M_ASSIGN_OR_RETURN(auto records, Read(from, end, /*first_only=*/true));
  if (records.empty()) return std::optional<KafkaMessage>{};
  return std::optional<KafkaMessage>(std::move(records.front()));
}

Result<std::optional<KafkaMessage>> KafkaInspector::LastRecord(const std::string& topic, int32_t partition, int64_t end) {
  // Commit markers and aborted records may trail the last record: look back further and further.
  for (int64_t back = 2;; back *= 16) {
    int64_t from = std::max<int64_t>(end - back, 0);
    M2M_ASSIGN_OR_RETURN(auto records, Read({topic, partition, from}, end, /*first_only=*/false));
    if (!records.empty()) return std::optional<KafkaMessage>(std::move(records.back()));
    if (from == 0) return std::optional<KafkaMessage>{};
  }
}

}  // namespace m2m
