"""What the executors run: the records of a task's Kafka partitions in a micro-batch into MySQL, through
the C++ apply core (the m2m_core extension, spark/native; docs/spark.md, "How a micro-batch is
applied"). Python only hands the Arrow columns of Spark's Kafka source over; decoding, mapping, SQL,
the exactly-once transaction, quarantine and retries are the core's, as in `mongo2mysql apply`."""
from dataclasses import dataclass, field

import pyarrow as pa

from . import zip_imports

zip_imports.install()

# The row a task returns to the driver per Kafka partition: how far it got, and the barrier it stopped before.
OUTCOME_ARROW = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("records", pa.int64()),
                           ("skipped", pa.int64()), ("retries", pa.int64()), ("held_t", pa.int64()),
                           ("held_i", pa.int64()), ("held_rank", pa.int32()), ("held_offset", pa.int64())])


@dataclass(frozen=True)
class Settings:
    """Everything a task needs, shipped to the executors with the function (so the MySQL password
    travels in Spark's task closures, as a JDBC sink's does)."""
    group: str
    mysql: tuple  # sorted (key, value) pairs of m2m_core.Applier's mysql options
    mapping_yaml: str | None = None
    mongo_uri: str | None = None
    on_drop: str = ""
    on_rename: str = ""
    max_batch_events: int = 5000
    max_batch_bytes: int = 64 << 20
    retry_for_seconds: int = 600
    log_level: str = "info"
    instant_add_column: bool = field(default=True)


# One Applier per Python worker and settings: its MySQL connection and catalog serve every task the
# worker runs (spark.python.worker.reuse, Spark's default).
_APPLIERS = {}


def _applier(settings):
    import m2m_core

    applier = _APPLIERS.get(settings)
    if applier is None:
        m2m_core.set_log_level(settings.log_level)
        applier = _APPLIERS[settings] = m2m_core.Applier(
            mysql=dict(settings.mysql), group=settings.group, mapping_yaml=settings.mapping_yaml,
            mongo_uri=settings.mongo_uri, on_drop=settings.on_drop, on_rename=settings.on_rename,
            instant_add_column=settings.instant_add_column)
    return applier


def apply_partitions(settings, release):
    """The mapInArrow function of one round: applies each task's records (whole Kafka partitions, one
    or more per task), each partition stopping before its first barrier not in `release` (key tuples)
    while the others go on, as they would in tasks of their own; yields one OUTCOME_ARROW row per
    partition."""
    def run(batches):
        import m2m_core

        applier = _applier(settings)
        runs = {}  # (topic, partition) -> its RangeRun, all on the worker's one Applier
        for batch in batches:  # read to the end even when every partition is held: the worker must drain its input
            if batch.num_rows == 0:
                continue
            topics = batch.column("topic").to_pylist()
            partitions = batch.column("partition").to_pylist()
            columns = [topics, partitions] + [batch.column(name).to_pylist() for name in ("offset", "key", "value")]
            columns.append(batch.column("timestamp").cast(pa.int64()).to_pylist())
            # A partition's records are contiguous in a task's input (coalesce concatenates partitions).
            start = 0
            for end in range(1, len(topics) + 1):
                if end < len(topics) and (topics[end], partitions[end]) == (topics[start], partitions[start]):
                    continue
                tp = (topics[start], partitions[start])
                if tp not in runs:
                    runs[tp] = m2m_core.RangeRun(applier, release, settings.max_batch_events, settings.max_batch_bytes,
                                                 settings.retry_for_seconds)
                if not runs[tp].held:
                    runs[tp].feed(*(c[start:end] for c in columns))
                start = end
        rows = []
        for (topic, partition), task in runs.items():
            outcome = task.finish()
            key = outcome["held"] or (None, None, None, topic, partition, None)
            rows.append({"topic": topic, "partition": partition, "records": outcome["records"],
                         "skipped": outcome["skipped"], "retries": outcome["retries"], "held_t": key[0],
                         "held_i": key[1], "held_rank": key[2], "held_offset": key[5]})
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=OUTCOME_ARROW)
    return run


def held_key(row):
    """The barrier an outcome row was held by, as the core's key tuple (None when not held)."""
    if row["held_t"] is None:
        return None
    return (row["held_t"], row["held_i"], row["held_rank"], row["topic"], row["partition"], row["held_offset"])


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
