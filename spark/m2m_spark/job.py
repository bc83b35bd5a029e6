"""mongo2mysql's Spark engine: Kafka change events -> MySQL tables, exactly once.

Reads the capture topics with Spark's Kafka source; the executors apply each partition's records
with the C++ apply core (the m2m_core extension), the rules of docs/mapping.md and the exactly-once
transaction of `mongo2mysql apply`, its offsets stored in MySQL with the rows (docs/spark.md). Local
mode by default; spark-submit it for a cluster (README, "Spark").
"""
import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

from py4j.java_gateway import JavaClass
from pyspark.sql.streaming.listener import StreamingQueryListener

from . import core
from . import lost
from . import real_time
from .session import build_session, extension_path, real_time_build, state_folder
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

MySQL's _m2m_offsets table (the job's --job-name is its group there) makes the job exactly once:
kill it, or any executor, at any moment and start it again with the same --job-name; the checkpoint
folder only saves re-reading. The MySQL password comes from M2M_MYSQL_PASSWORD, never from the
command line."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="mongo2mysql spark", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("Kafka (the source)")
    src.add_argument("--kafka-bootstrap", default=os.environ.get("M2M_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                     help="bootstrap servers. Default: %(default)s")
    which = src.add_mutually_exclusive_group(required=True)
    which.add_argument("--topics", help="comma-separated topics to read")
    which.add_argument("--topic-pattern", help="Java regex of topics to read (new topics are picked up)")
    src.add_argument("--max-offsets-per-trigger", type=int, default=None,
                     help="at most this many Kafka records per micro-batch (Spark's maxOffsetsPerTrigger); the "
                          "order across topics then holds within each micro-batch only (docs/spark.md). "
                          "Default: no limit")
    src.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                     help="extra option of the Kafka source, e.g. kafka.security.protocol=SSL (repeatable)")
    src.add_argument("--allow-data-loss", action="store_true",
                     help="go on when Kafka no longer holds records the job has not applied (deleted by "
                          "retention, or the topic was deleted and made again): they are skipped and MySQL misses "
                          "their changes. Default: stop with an error naming them (docs/spark.md, "
                          "\"Records lost in Kafka\")")
    dst = p.add_argument_group("MySQL (the sink)")
    dst.add_argument("--mysql-host", default="127.0.0.1", help="Default: %(default)s")
    dst.add_argument("--mysql-port", type=int, default=3306, help="Default: %(default)s")
    dst.add_argument("--mysql-user", default="mongo2mysql", help="Default: %(default)s")
    dst.add_argument("--mysql-database", required=True, help="the database the tables are written to")
    dst.add_argument("--mysql-ssl-mode", type=str.upper, default="DISABLED",
                     choices=("DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"),
                     help="TLS to MySQL, as mongo2mysql apply's (docs/operations.md, \"TLS to MySQL\"). "
                          "Default: %(default)s")
    dst.add_argument("--mysql-ssl-ca", help="PEM file of the CA that signs MySQL's certificate (on every node)")
    dst.add_argument("--mysql-ssl-cert", help="PEM client certificate (on every node)")
    dst.add_argument("--mysql-ssl-key", help="PEM private key of --mysql-ssl-cert (on every node)")
    run = p.add_argument_group("the job")
    run.add_argument("--mapping", help="YAML mapping file (docs/mapping.md, section 8). Default: automatic mapping")
    run.add_argument("--on-drop", choices=("keep", "drop"), default="",
                     help="on a collection drop: keep the tables or drop them. Default: the mapping's (keep)")
    run.add_argument("--on-rename", choices=("rename", "keep"), default="",
                     help="on a collection rename: rename the tables or keep them. Default: the mapping's (rename)")
    run.add_argument("--mongo-uri", default=None,
                     help="MongoDB to fetch the documents of updates the mapping cannot apply column by column "
                          "(as mongo2mysql apply --mongo-uri). Default: such events are quarantined")
    run.add_argument("--max-batch-events", type=int, default=5000,
                     help="events per MySQL transaction of a task, at most. Default: %(default)s")
    run.add_argument("--retry-for", type=int, default=600, metavar="SECONDS",
                     help="how long a task retries while MySQL is unreachable or restarting. Default: %(default)s")
    run.add_argument("--job-name", default=None,
                     help="the job's group in MySQL's _m2m_offsets (its applied positions). Default: spark-<database>")
    run.add_argument("--checkpoint", default=None,
                     help="checkpoint location (any Hadoop file system URI on a cluster). "
                          "Default: .stack/spark-checkpoints/<job name>")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--until-caught-up", action="store_true",
                      help="apply what the topics hold now, then exit (trigger availableNow)")
    mode.add_argument("--trigger-interval", default="1 second",
                      help="streaming: start a micro-batch this often (processingTime trigger). Default: %(default)s")
    mode.add_argument("--real-time", action="store_true",
                      help="streaming in Spark's Real-time Mode: long-running tasks hand each record to the core as "
                           "it arrives, through a JVM writer (docs/spark.md, \"Real-time Mode\"); drops, renames "
                           "and new collections are applied in micro-batches in between")
    run.add_argument("--max-batch-ms", type=int, default=100,
                     help="--real-time: a task commits its records once the oldest has waited this long (or "
                          "--max-batch-events are in). Default: %(default)s")
    run.add_argument("--real-time-epoch", default="5 minutes",
                     help="--real-time: how long each Real-time Mode batch runs (Spark's checkpoint interval; "
                          "commits happen inside it; records wait while one ends and the next starts, and new "
                          "topics are read from the next: docs/spark.md). Default: %(default)s")
    run.add_argument("--master", default=None, help="Spark master. Default: M2M_SPARK_MASTER, else spark-submit's, else local[2]")
    args = p.parse_args(argv)
    if args.max_batch_events <= 0:
        p.error("--max-batch-events must be positive")
    if args.max_batch_ms < 0:
        p.error("--max-batch-ms must not be negative")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "PYSPARK_GATEWAY_PORT" not in os.environ and extension_path() is None and importlib.util.find_spec(
            "m2m_core") is None:  # local mode: the executors would fail on their first record
        logging.getLogger("m2m_spark").error(
            "the m2m_core extension (the C++ apply core the executors run) is not built: run `make`, which "
            "builds it into build/python (or set M2M_BUILD to the build folder that has it), or install the "
            "wheel `make wheel` builds (docs/spark.md, \"On a cluster\")")
        return 2
    job = args.job_name or f"spark-{args.mysql_database}"
    checkpoint = args.checkpoint or str(state_folder() / "spark-checkpoints" / job)
    mysql = {"host": args.mysql_host, "port": args.mysql_port, "user": args.mysql_user,
             "password": os.environ.get("M2M_MYSQL_PASSWORD", ""), "database": args.mysql_database,
             **tls(args)}
    jars = []
    if args.real_time:
        if real_time_build() is None:
            logging.getLogger("m2m_spark").error(
                "--real-time needs the JVM writer and its JNI library (build/jvm/m2m-spark-realtime.jar, "
                "libm2m_jni.so), built by `make` with a JDK (docs/spark.md, \"Real-time Mode\")")
            return 2
        jars.append(real_time_build()[0])
    spark = build_session(f"mongo2mysql-{job}", args.master, jars)
    if args.real_time and not isinstance(spark._jvm.m2m.spark.RealtimeWriter, JavaClass):
        # spark.jars reaches the executors; a driver JVM that spark-submit started has only --jars.
        logging.getLogger("m2m_spark").error(
            "--real-time: the driver cannot load the JVM writer: give its jar to spark-submit, --jars …,%s "
            "(docs/spark.md, \"On a cluster\")", jars[0])
        return 2
    spark.streams.addListener(PhaseLog())
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


class PhaseLog(StreamingQueryListener):
    """Logs where each batch's time went, in the phases of Spark's progress reports (docs/spark.md,
    "Latency"): a micro-batch's addBatch is the job's own work (its Spark job, the tasks' C++ apply
    and MySQL commits), the rest is Spark's per-batch work (the checkpoint's offset and commit logs,
    planning, the Kafka source's offsets). Batches without records are not logged."""

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        p = event.progress
        if p.numInputRows:
            phases = ", ".join(f"{k} {v}" for k, v in sorted(p.durationMs.items()) if k != "triggerExecution")
            logging.getLogger("m2m_spark").info("%s batch %s: %s records in %s ms (%s ms)", p.name, p.batchId,
                                                p.numInputRows, p.durationMs.get("triggerExecution"), phases)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass


def tls(args):
    """The m2m_core mysql options of the TLS flags given."""
    given = {"ssl_mode": args.mysql_ssl_mode, "ssl_ca": args.mysql_ssl_ca, "ssl_cert": args.mysql_ssl_cert,
             "ssl_key": args.mysql_ssl_key}
    return {k: v for k, v in given.items() if v and v != "DISABLED"}


def settings(args, job, mysql):
    """What the executors' tasks need (core.Settings)."""
    mapping = Path(args.mapping).read_text(encoding="utf-8") if args.mapping else None
    return core.Settings(group=job, mysql=tuple(sorted(mysql.items())), mapping_yaml=mapping,
                         mongo_uri=args.mongo_uri, on_drop=args.on_drop, on_rename=args.on_rename,
                         max_batch_events=args.max_batch_events, retry_for_seconds=args.retry_for)


def start(spark, args, job, checkpoint, mysql, until_caught_up=None):
    """Starts the micro-batch query (until caught up when `until_caught_up`, else as args say); returns it."""
    until_caught_up = args.until_caught_up if until_caught_up is None else until_caught_up
    writer = (kafka_source(spark, args).writeStream
              .foreachBatch(BatchWriter(job, settings(args, job, mysql), consumer_properties(args)))
              .option("checkpointLocation", checkpoint).queryName(job))
    writer = writer.trigger(availableNow=True) if until_caught_up else writer.trigger(
        processingTime=args.trigger_interval)
    # The Kafka source's V1 implementation (session.py says why); Real-time Mode needs the V2 one.
    spark.conf.set(MICRO_BATCH_V2_DISABLED, "org.apache.spark.sql.kafka010.KafkaSourceProvider")
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
              .option("failOnDataLoss", "false" if args.allow_data_loss else "true"))
    reader = reader.option("subscribe", args.topics) if args.topics else reader.option("subscribePattern", args.topic_pattern)
    if args.max_offsets_per_trigger and micro_batch:
        reader = reader.option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
    for kv in args.kafka_option:
        k, _, v = kv.partition("=")
        reader = reader.option(k, v)
    return reader.load()


if __name__ == "__main__":
    sys.exit(main())
