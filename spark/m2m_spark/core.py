"""What the executors run, and what the driver learns from it (docs/spark.md, "How a micro-batch is
applied"): the C++ apply core in the executors' JVMs (libm2m_jni, spark/jvm), to which the JVM
classes m2m.spark.BatchTasks (a micro-batch's tasks) and m2m.spark.RealtimeWriter (Real-time Mode)
hand the Kafka records' bytes. Decoding, mapping, SQL, the exactly-once transaction, quarantine and
retries are the core's, as in `mongo2mysql apply`; no Python runs on the executors."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    """Everything a task needs (the MySQL password travels in Spark's task closures, as a JDBC sink's does)."""
    group: str
    mysql: tuple  # sorted (key, value) pairs: host, port, user, password, database, timeout_seconds, ssl_*
    mapping_yaml: str | None = None
    mongo_uri: str | None = None
    on_drop: str = ""
    on_rename: str = ""
    max_batch_events: int = 5000
    max_batch_bytes: int = 64 << 20
    retry_for_seconds: int = 600
    log_level: str = "info"
    instant_add_column: bool = field(default=True)


def core_settings(settings):
    """The core's settings (spark/native/host_options.h) from Settings, as text."""
    out = {k: str(v) for k, v in settings.mysql}
    out["group"] = settings.group
    for key, value in (("mapping_yaml", settings.mapping_yaml), ("mongo_uri", settings.mongo_uri),
                       ("on_drop", settings.on_drop), ("on_rename", settings.on_rename)):
        if value:
            out[key] = value
    out["instant_add_column"] = "true" if settings.instant_add_column else "false"
    return out


def jvm_settings(jvm, settings, library):
    """Settings as the JVM classes take them (m2m.spark.CoreSettings); library: libm2m_jni.so's path on
    the executors."""
    jmap = jvm.java.util.HashMap()
    for k, v in core_settings(settings).items():
        jmap.put(k, v)
    return jvm.m2m.spark.CoreSettings(library, jmap, settings.max_batch_events, settings.max_batch_bytes,
                                      settings.retry_for_seconds, settings.log_level)


# The fields of a task's outcome line per Kafka partition (TaskRun::Finish in spark/jvm/m2m_jni.cc): how far
# it got, and the barrier it stopped before (its cluster time, rank and offset; empty when not held).
OUTCOME_FIELDS = ("topic", "partition", "records", "skipped", "retries", "held_t", "held_i", "held_rank",
                  "held_offset")


def outcomes(text):
    """A round's outcome lines as dicts of OUTCOME_FIELDS."""
    rows = []
    for line in text.splitlines():
        topic, *numbers = line.split("\t")
        rows.append(dict(zip(OUTCOME_FIELDS, [topic] + [int(n) if n else None for n in numbers])))
    return rows


def held_key(row):
    """The barrier an outcome row was held by, as the core's key tuple (None when not held)."""
    if row["held_t"] is None:
        return None
    return (row["held_t"], row["held_i"], row["held_rank"], row["topic"], row["partition"], row["held_offset"])


def release_lines(keys):
    """Key tuples as the tasks read the barriers they may apply (Released in spark/jvm/m2m_jni.cc)."""
    return "".join("\t".join(map(str, key)) + "\n" for key in keys)


SNAPSHOT_RANK = 1  # OrderKey::Rank::kSnapshot: snapshot reads of different collections commute


def to_release(held):
    """The held barriers the next round may apply, from all of them (key tuples): the first in
    MongoDB's order, and the snapshot reads right behind it (docs/spark.md, "Order across topics")."""
    ordered = sorted(held)
    out = ordered[:1]
    for key in ordered[1:]:
        if key[2] != SNAPSHOT_RANK or out[-1][2] != SNAPSHOT_RANK:
            break
        out.append(key)
    return out
