"""mongo2mysql's Spark engine: Kafka change events -> MySQL tables, exactly once.

Reads the capture topics with Spark's Kafka source; the executors apply each partition's records
with the C++ apply core (libm2m_jni in the executors' JVMs), the rules of docs/mapping.md and the exactly-once
transaction of `mongo2mysql apply`, its offsets stored in MySQL with the rows (docs/spark.md). Local
mode by default; spark-submit it for a cluster (README, "Spark").
"""
import argparse
import json
import logging
import os
import sys
from pathlib import Path

from py4j.java_gateway import JavaClass

from . import core
from . import lost
from . import logs
from . import real_time
from .session import build_session, executor_library, jvm_build, state_folder, use_checkpoint_manager
from .settings_table import SETTINGS
from .writer import BatchWriter


EXAMPLES = """examples:
  # apply everything in two topics, then exit (as `mongo2mysql apply --until-caught-up`)
  M2M_MYSQL_PASSWORD=... python -m m2m_spark.job --topics rs0.shop.orders,rs0.shop.users \\
      --mysql-database shop --until-caught-up
  # keep streaming, one micro-batch every 5 seconds, with a YAML mapping
  python -m m2m_spark.job --topic-pattern 'rs0\\.shop\\..*' --mysql-database shop \\
      --mapping mapping.yaml --trigger-interval '5 seconds'
  # keep streaming with sub-second latency, in Spark's Real-time Mode (docs/spark.md)
  python -m m2m_spark.job --topics rs0.shop.orders --mysql-database shop --real-time

MySQL's _m2m_offsets table (the job's --group is its group there) makes the job exactly once:
kill it, or any executor, at any moment and start it again with the same --group; the checkpoint
folder only saves re-reading. The MySQL password comes from M2M_MYSQL_PASSWORD, never from the
command line."""


# Options that exclude each other; the first group is required.
EXCLUSIVE = (("topics", "topic-pattern"), ("until-caught-up", "trigger-interval", "real-time"))
TYPES = {"integer": int, "number": float}


def parse_args(argv=None):
    """The job's options: the rows of the settings table (settings_table.py, generated from
    cli/settings.cc) that name the Spark job, so they are `mongo2mysql apply`'s names."""
    p = argparse.ArgumentParser(prog="mongo2mysql spark", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sections, exclusive = {}, {}
    for s in SETTINGS:
        section = sections.get(s["section"]) or sections.setdefault(s["section"], p.add_argument_group(s["section"]))
        group = next((g for g in EXCLUSIVE if s["name"] in g), None)
        if group is not None:
            section = exclusive.get(group) or exclusive.setdefault(group, section.add_mutually_exclusive_group(
                required=group is EXCLUSIVE[0]))
        names = [f"--{s['name']}", *(f"--{old}" for old in s["old_names"])]
        meaning = s["meaning"] + "".join(f" (--{old}: its old name)" for old in s["old_names"])
        default = os.environ.get(s["env"]) if s["env"] else None
        # An empty default: the option is off (None), or for a choice the core's default ("").
        default = default if default is not None else (s["default"] or ("" if s["choices"] else None))
        if s["type"] == "flag":
            section.add_argument(*names, action="store_true", help=meaning)
            continue
        kwargs = {"help": meaning + (". Default: %(default)s" if s["default"] else ""), "default": default,
                  "required": s["required"] and group is None}
        if s["type"] in TYPES:
            kwargs["type"] = TYPES[s["type"]]
            kwargs["default"] = None if default is None else TYPES[s["type"]](default)
        if s["type"] == "key=value list":
            kwargs.update(action="append", default=[], metavar="KEY=VALUE")
        if s["choices"]:
            kwargs["choices"] = s["choices"]
            if s["name"] == "mysql-ssl-mode":
                kwargs["type"] = str.upper
        if s["env"]:
            kwargs["help"] += f" (environment variable {s['env']})"
        section.add_argument(*names, **kwargs)
    args = p.parse_args(argv)
    if args.max_batch_events <= 0:
        p.error("--max-batch-events must be positive")
    if args.max_batch_ms < 0:
        p.error("--max-batch-ms must not be negative")
    return args


def main(argv=None):
    args = parse_args(argv)
    logs.configure(args.log_format, args.log_level, {"command": "spark", "group": args.group or
                                                     f"spark-{args.mysql_database}"})
    if jvm_build() is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # spark-submit may ship them
        logging.getLogger("m2m_spark").error(
            "the job's JVM classes and the C++ apply core its executors run (m2m-spark.jar, libm2m_jni.so) are "
            "not built: run `make` with a JDK 17, which builds them into build/jvm (or set M2M_BUILD to the build "
            "folder that has them), or install the wheel `make wheel` builds (docs/spark.md, \"On a cluster\")")
        return 2
    job = args.group or f"spark-{args.mysql_database}"
    checkpoint = args.checkpoint or str(state_folder() / "spark-checkpoints" / job)
    mysql = {"host": args.mysql_host, "port": args.mysql_port, "user": args.mysql_user,
             "password": os.environ.get("M2M_MYSQL_PASSWORD", ""), "database": args.mysql_database,
             **tls(args)}
    spark = build_session(f"mongo2mysql-{job}", args.master)
    if not isinstance(spark._jvm.m2m.spark.BatchTasks, JavaClass):
        # spark.jars reaches the executors; a driver JVM that spark-submit started has only --jars.
        logging.getLogger("m2m_spark").error(
            "the driver cannot load the job's JVM classes: give their jar to spark-submit, --jars …,%s "
            "(docs/spark.md, \"On a cluster\")", jvm_build()[0] if jvm_build() else "m2m-spark.jar")
        return 2
    if executor_library(spark) is None:
        logging.getLogger("m2m_spark").error(
            "the executors would find no C++ apply core: ship it with spark-submit --files …/libm2m_jni.so, or "
            "install the wheel at the same path on every node (docs/spark.md, \"On a cluster\")")
        return 2
    PhaseLog.add_to(spark)
    try:
        if args.real_time:
            real_time.run(spark, args, job, checkpoint, settings(args, job, mysql),
                          lambda: start(spark, args, job, checkpoint, mysql, until_caught_up=True),
                          lambda: kafka_source(spark, args, micro_batch=False), consumer_properties(args))
        else:
            wait(start(spark, args, job, checkpoint, mysql))
    except (lost.KafkaDataLost, real_time.TooFewSlots) as e:
        logging.getLogger("m2m_spark").error("%s", e)
        return 2
    return 0


def wait(query, timeout=None):
    """query.awaitTermination(timeout); a query stopped by records lost in Kafka raises KafkaDataLost."""
    from pyspark.errors import StreamingQueryException

    try:
        return query.awaitTermination(timeout)
    except StreamingQueryException as e:
        # Lost records met by a batch's own Spark jobs were described by the BatchWriter (the Java
        # exception does not cross the Python function); the source's own checks fail the query.
        found = lost.REPORTED.pop(query.name, None) or lost.from_java(getattr(e, "_origin", None))
        if found is None:
            raise
        raise found from None


class PhaseLog:
    """Logs where each batch's time went, in the phases of Spark's progress reports (docs/spark.md,
    "Latency"): a micro-batch's addBatch is the job's own work (its Spark job, the tasks' C++ apply
    and MySQL commits), the rest is Spark's per-batch work (the checkpoint's offset and commit logs,
    planning, the Kafka source's offsets). Batches without records are not logged.

    It implements Spark's Java listener interface itself and reads each report as one JSON text:
    PySpark's StreamingQueryListener builds its Python copy of a report field by field, a Py4J call
    each, whose name lookups missed through every jar of the classpath: 40% of the Java samples of
    the job's JVM at a micro-batch a second (JFR, bench/latency_bench.py --engine spark)."""

    @classmethod
    def add_to(cls, spark):
        from pyspark.java_gateway import ensure_callback_server_started

        ensure_callback_server_started(spark.sparkContext._gateway)
        wrapper = spark._jvm.org.apache.spark.sql.streaming.PythonStreamingQueryListenerWrapper(cls())
        spark._jsparkSession.streams().addListener(wrapper)

    def onQueryProgress(self, jevent):
        p = json.loads(jevent.progress().json())
        if p.get("numInputRows"):
            phases = ", ".join(f"{k} {v}" for k, v in sorted(p["durationMs"].items()) if k != "triggerExecution")
            logging.getLogger("m2m_spark").info("%s batch %s: %s records in %s ms (%s ms)", p["name"], p["batchId"],
                                                p["numInputRows"], p["durationMs"].get("triggerExecution"), phases)

    def onQueryStarted(self, jevent):
        pass

    def onQueryIdle(self, jevent):
        pass

    def onQueryTerminated(self, jevent):
        pass

    class Java:
        implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


def tls(args):
    """The core's mysql options of the TLS flags given."""
    given = {"ssl_mode": args.mysql_ssl_mode, "ssl_ca": args.mysql_ssl_ca, "ssl_cert": args.mysql_ssl_cert,
             "ssl_key": args.mysql_ssl_key}
    return {k: v for k, v in given.items() if v and v != "DISABLED"}


def settings(args, job, mysql):
    """What the executors' tasks need (core.Settings)."""
    mapping = Path(args.mapping).read_text(encoding="utf-8") if args.mapping else None
    return core.Settings(group=job, mysql=tuple(sorted(mysql.items())), mapping_yaml=mapping,
                         mongo_uri=args.mongo_uri, on_drop=args.on_drop, on_rename=args.on_rename,
                         max_batch_events=args.max_batch_events, retry_for_seconds=args.retry_for,
                         log_level=args.log_level)


def start(spark, args, job, checkpoint, mysql, until_caught_up=None):
    """Starts the micro-batch query (until caught up when `until_caught_up`, else as args say); returns it."""
    until_caught_up = args.until_caught_up if until_caught_up is None else until_caught_up
    writer = (kafka_source(spark, args).writeStream
              .foreachBatch(BatchWriter(job, settings(args, job, mysql), executor_library(spark),
                                        consumer_properties(args)))
              .option("checkpointLocation", checkpoint).queryName(job))
    writer = writer.trigger(availableNow=True) if until_caught_up else writer.trigger(
        processingTime=args.trigger_interval)
    # The Kafka source's V1 implementation (session.py says why); Real-time Mode needs the V2 one.
    spark.conf.set(MICRO_BATCH_V2_DISABLED, "org.apache.spark.sql.kafka010.KafkaSourceProvider")
    use_checkpoint_manager(spark, checkpoint)
    return writer.start()


MICRO_BATCH_V2_DISABLED = "spark.sql.streaming.disabledV2MicroBatchReaders"


def consumer_properties(args):
    """Properties of a Kafka consumer in the driver that reads what the source reads."""
    consumer = {"bootstrap.servers": args.kafka_bootstrap, "isolation.level": "read_committed"}
    for kv in args.kafka_option:
        k, _, v = kv.partition("=")
        if k.startswith("kafka."):
            consumer[k[len("kafka."):]] = v
    return consumer


KAFKA_POLL_DEFAULTS = {"kafka.max.poll.records": "5000", "kafka.max.partition.fetch.bytes": str(8 << 20)}


def kafka_source(spark, args, micro_batch=True):
    """The records of the job's topics: Spark's Kafka source, as a streaming DataFrame (for the
    micro-batch query, or for Real-time Mode, which has no batch size to limit)."""
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", args.kafka_bootstrap)
              .option("startingOffsets", "earliest")
              # capture publishes in Kafka transactions; a batch it aborted (a crash) must never be
              # applied, so only committed records are read, as the native engine does.
              .option("kafka.isolation.level", "read_committed")
              # Records deleted before the job read them are changes MySQL would silently miss: Spark
              # stops the query (KAFKA_DATA_LOSS, which `wait` words), unless the user accepts it.
              .option("failOnDataLoss", "false" if args.accept_lost_events else "true"))
    reader = reader.option("subscribe", args.topics) if args.topics else reader.option("subscribePattern", args.topic_pattern)
    # Spark's Kafka source seeks, polls and asks the broker for the partition's first and last offsets
    # (two more round trips) for every poll a task makes: polls of Kafka's default 500 records (and 1 MiB
    # a partition) spent about 40% of a task's time there (docs/spark.md, "Tuning"). --kafka-option
    # overrides these.
    for k, v in KAFKA_POLL_DEFAULTS.items():
        reader = reader.option(k, v)
    if args.max_offsets_per_trigger and micro_batch:
        reader = reader.option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
    for kv in args.kafka_option:
        k, _, v = kv.partition("=")
        reader = reader.option(k, v)
    return reader.load()


if __name__ == "__main__":
    sys.exit(main())
