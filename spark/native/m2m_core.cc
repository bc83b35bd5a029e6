// m2m_core: the Python extension through which the Spark engine's executors host the C++ apply core
// (apply/applier.h, apply/range_applier.h; docs/spark.md). Python hands over the records of a Kafka
// partition as Spark's Kafka source gives them; everything else (decoding, mapping, SQL, the
// exactly-once transaction, quarantine, retries) happens here, as in the native daemon.
//
// Errors: a Status that is not OK raises m2m_core.ApplyError (a RuntimeError) with the message, and
// `retriable` telling whether the same call may succeed later; invalid options raise ValueError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "applier.h"
#include "host_options.h"
#include "range_applier.h"

namespace py = pybind11;
using namespace m2m;
using namespace m2m::apply;

namespace {

py::object& ApplyErrorType() {
  static py::object type;
  return type;
}

[[noreturn]] void Raise(const Status& st) {
  if (st.code() == StatusCode::kInvalidArgument) throw py::value_error(st.ToString());
  py::object error = ApplyErrorType()(st.ToString());
  error.attr("retriable") = st.retriable();
  PyErr_SetObject(ApplyErrorType().ptr(), error.ptr());
  throw py::error_already_set();
}

void Check(const Status& st) {
  if (!st.ok()) Raise(st);
}

template <typename T>
T Take(Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(*r);
}

// An OrderKey as Python sees it: (t, i, rank, topic, partition, offset), comparing as the key does;
// rank 0 collection events, 1 snapshot reads, 2 change-stream writes (barrier.h).
using KeyTuple = std::tuple<uint32_t, uint32_t, int, std::string, int32_t, int64_t>;

KeyTuple ToTuple(const OrderKey& k) {
  return {k.t, k.i, static_cast<int>(k.rank), k.partition.first, k.partition.second, k.offset};
}

OrderKey FromTuple(const KeyTuple& t) {
  int rank = std::get<2>(t);
  if (rank < 0 || rank > static_cast<int>(OrderKey::Rank::kDocument)) throw py::value_error("bad key rank");
  return {std::get<0>(t), std::get<1>(t), static_cast<OrderKey::Rank>(rank), {std::get<3>(t), std::get<4>(t)},
          std::get<5>(t)};
}

std::optional<std::string> Bytes(const py::handle& h) {
  if (h.is_none()) return std::nullopt;
  return std::string(py::bytes(py::reinterpret_borrow<py::object>(h)));
}

// One Applier per Python worker and configuration (spark/m2m_spark/core.py caches it): its MySQL
// connection and catalog outlive a task.
class PyApplier {
 public:
  PyApplier(const py::dict& mysql, const std::string& group, const std::optional<std::string>& mapping_yaml,
            const std::optional<std::string>& mongo_uri, const std::string& on_drop, const std::string& on_rename,
            bool instant_add_column) {
    std::map<std::string, std::string> settings{{"group", group},
                                                {"on_drop", on_drop},
                                                {"on_rename", on_rename},
                                                {"instant_add_column", instant_add_column ? "true" : "false"}};
    for (auto [key, value] : mysql) {
      std::string k = py::str(key);
      static const std::set<std::string> kMysqlKeys{"host",    "port",   "user",   "password", "database",
                                                    "timeout_seconds", "ssl_mode", "ssl_ca", "ssl_cert", "ssl_key"};
      if (!kMysqlKeys.count(k)) {
        throw py::value_error("mysql option " + k + " is not known (host, port, user, password, database, "
                              "timeout_seconds, ssl_mode, ssl_ca, ssl_cert, ssl_key)");
      }
      settings[k] = py::str(value);
    }
    if (mapping_yaml) settings["mapping_yaml"] = *mapping_yaml;
    if (mongo_uri) settings["mongo_uri"] = *mongo_uri;
    ApplierOptions o = Take(SparkApplierOptions(settings));
    applier_ = Take(Applier::Make(std::move(o), &stats_));
  }

  Applier& applier() { return *applier_; }

  py::dict Stats() const {
    py::dict d;
    d["events"] = stats_.events.load();
    d["batches"] = stats_.batches.load();
    d["quarantined"] = stats_.quarantined.load();
    d["ddl_statements"] = stats_.ddl_statements.load();
    return d;
  }

 private:
  ApplyStats stats_;
  std::unique_ptr<Applier> applier_;
};

std::set<OrderKey> Keys(const std::vector<KeyTuple>& tuples) {
  std::set<OrderKey> out;
  for (const KeyTuple& t : tuples) out.insert(FromTuple(t));
  return out;
}

class PyRangeRun {
 public:
  PyRangeRun(PyApplier& owner, const std::vector<KeyTuple>& release, int max_batch_events, size_t max_batch_bytes,
             int retry_for_seconds)
      : run_(owner.applier(), RangeOptions{.release = Keys(release),
                                           .max_batch_events = max_batch_events,
                                           .max_batch_bytes = max_batch_bytes,
                                           .retry_for = std::chrono::seconds(retry_for_seconds)}) {
    if (max_batch_events <= 0) throw py::value_error("max_batch_events must be positive");
  }

  // Columns of one Arrow batch of Spark's Kafka source, as Python lists; timestamps in microseconds.
  bool Feed(const py::list& topics, const py::list& partitions, const py::list& offsets, const py::list& keys,
            const py::list& values, const py::list& timestamps_us) {
    size_t n = offsets.size();
    if (topics.size() != n || partitions.size() != n || keys.size() != n || values.size() != n ||
        timestamps_us.size() != n) {
      throw py::value_error("feed: the columns differ in length");
    }
    std::vector<KafkaMessage> records(n);
    for (size_t i = 0; i < n; ++i) {
      KafkaMessage& m = records[i];
      m.topic = py::str(topics[i]);
      m.partition = partitions[i].cast<int32_t>();
      m.offset = offsets[i].cast<int64_t>();
      m.key = Bytes(keys[i]);
      m.value = Bytes(values[i]);
      m.timestamp_ms = timestamps_us[i].is_none() ? 0 : timestamps_us[i].cast<int64_t>() / 1000;
    }
    Status st;
    {
      py::gil_scoped_release unlocked;
      st = run_.Feed(std::move(records));
    }
    Check(st);
    return run_.held();
  }

  py::dict Finish() {
    Result<RangeOutcome> outcome = Status::OK();
    {
      py::gil_scoped_release unlocked;
      outcome = run_.Finish();
    }
    RangeOutcome o = Take(std::move(outcome));
    py::dict d;
    d["records"] = o.records;
    d["skipped"] = o.skipped;
    d["retries"] = o.retries;
    d["held"] = o.held ? py::cast(ToTuple(*o.held)) : py::none();
    return d;
  }

  bool held() const { return run_.held(); }

 private:
  RangeRun run_;
};

}  // namespace

PYBIND11_MODULE(m2m_core, m) {
  m.doc() = "mongo2mysql's apply core for the Spark engine's executors (docs/spark.md)";
  UseBundledMariadbPlugins("m2m_core.plugins");  // beside this module in the wheel
  ApplyErrorType() = py::reinterpret_borrow<py::object>(
      PyErr_NewExceptionWithDoc("m2m_core.ApplyError",
                                "The apply core failed; `retriable` says whether trying again later may succeed.",
                                PyExc_RuntimeError, nullptr));
  m.attr("ApplyError") = ApplyErrorType();
  m.def(
      "set_log_level", [](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); },
      "spdlog level of the core's log lines (on the worker's stderr): debug, info, warn, error");

  py::class_<PyApplier>(m, "Applier", "The apply transaction, for the records of one group (applier.h)")
      .def(py::init<const py::dict&, const std::string&, const std::optional<std::string>&,
                    const std::optional<std::string>&, const std::string&, const std::string&, bool>(),
           py::arg("mysql"), py::arg("group"), py::arg("mapping_yaml") = py::none(), py::arg("mongo_uri") = py::none(),
           py::arg("on_drop") = "", py::arg("on_rename") = "", py::arg("instant_add_column") = true)
      .def("stats", &PyApplier::Stats, "counters since the Applier was made");

  py::class_<PyRangeRun>(m, "RangeRun", "One task's records into MySQL (range_applier.h)")
      .def(py::init<PyApplier&, const std::vector<KeyTuple>&, int, size_t, int>(), py::arg("applier"),
           py::arg("release") = std::vector<KeyTuple>{}, py::arg("max_batch_events") = 5000,
           py::arg("max_batch_bytes") = size_t{64} << 20, py::arg("retry_for_seconds") = 600,
           py::keep_alive<1, 2>())
      .def("feed", &PyRangeRun::Feed, py::arg("topics"), py::arg("partitions"), py::arg("offsets"), py::arg("keys"),
           py::arg("values"), py::arg("timestamps_us"), "adds records; True once a barrier holds the run")
      .def("finish", &PyRangeRun::Finish, "commits what remains; returns the outcome")
      .def_property_readonly("held", &PyRangeRun::held);
}
