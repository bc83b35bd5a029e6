"""The job's Real-time Mode (--real-time; docs/spark.md, "Real-time Mode"): Spark's Real-time Mode
(long-running tasks that take each Kafka record as it arrives) with a JVM ForeachWriter
(spark/jvm/src/m2m/spark/RealtimeWriter.java) that hands each record's bytes to the C++ apply core
through JNI (spark/jvm/m2m_jni.cc). The core commits a task's records once the oldest has waited
--max-batch-ms, storing each partition's next offset with the rows, so a replayed epoch skips what
was applied.

A task cannot see the other partitions, so it applies no barrier (a drop, a rename, the first event
of a collection without tables: docs/spark.md, "Order across topics"): it commits what precedes the
barrier and stops the query (m2m.spark.BarrierHeld). The job then runs the micro-batch query until
caught up, whose rounds apply the barriers in MongoDB's order, and starts Real-time Mode again. It
starts with that catch-up too, so a new job's snapshot (a barrier per collection) goes in
micro-batches."""
import logging

from pyspark.errors import StreamingQueryException
from pyspark.sql.streaming.query import StreamingQuery

from . import core
from .session import executor_library, use_checkpoint_manager
from .writer import kafka_consumer

log = logging.getLogger("m2m_spark")

BARRIER_HELD = "m2m barrier held:"  # m2m.spark.BarrierHeld.MARK


class TooFewSlots(RuntimeError):
    """Real-time Mode would leave Kafka partitions without a task."""


def partitions(jvm, args, kafka):
    """How many Kafka partitions the job's topics have now."""
    with kafka_consumer(kafka) as consumer:
        if args.topics:  # a topic not made yet has none (None from older Kafka clients)
            return sum(p.size() for p in map(consumer.partitionsFor, args.topics.split(",")) if p is not None)
        pattern = jvm.java.util.regex.Pattern.compile(args.topic_pattern)
        topics = consumer.listTopics()
        return sum(topics.get(t).size() for t in topics.keySet() if pattern.matcher(t).matches())


def check_slots(spark, args, kafka):
    """Raises TooFewSlots when the topics have more partitions than the job has task slots: each Kafka
    partition has a task for the whole epoch, and Spark does not check that they all fit (one without
    a slot would wait for the end of another's epoch, its records with it)."""
    slots, needed = spark.sparkContext.defaultParallelism, partitions(spark._jvm, args, kafka)
    if needed > slots:
        raise TooFewSlots(
            f"Real-time Mode runs a task per Kafka partition for the whole epoch: the topics have {needed} "
            f"partitions and the job {slots} task slots. Give it at least {needed} (--master local[{needed}], or "
            f"executors' cores on a cluster), or run it in micro-batches (docs/spark.md, \"Real-time Mode\")")


def start(spark, args, job, checkpoint, settings, source, kafka):
    """Starts the Real-time Mode query over `source()` (the Kafka source's DataFrame); returns it."""
    jvm = spark._jvm
    check_slots(spark, args, kafka)  # again: a catch-up may have met new topics
    writer = jvm.m2m.spark.RealtimeWriter(core.jvm_settings(jvm, settings, executor_library(spark)), args.max_batch_ms)
    # Real-time Mode reads through the Kafka source's V2 implementation (the micro-batch query keeps V1).
    spark.conf.set("spark.sql.streaming.disabledV2MicroBatchReaders", "")
    use_checkpoint_manager(spark, checkpoint)
    columns = source().select("topic", "partition", "offset", "key", "value", "timestamp")
    query = (columns._jdf.writeStream().foreach(writer).outputMode("update")
             .option("checkpointLocation", checkpoint.rstrip("/") + "-real-time").queryName(f"{job}-real-time")
             .trigger(jvm.org.apache.spark.sql.streaming.Trigger.RealTime(args.real_time_epoch)).start())
    return StreamingQuery(query)


def run(spark, args, job, checkpoint, settings, catch_up, source, kafka):
    """Alternates between catching up in micro-batches (`catch_up()` starts that query) and Real-time
    Mode, which stops at each barrier; returns when a query stops without error."""
    from .job import wait

    check_slots(spark, args, kafka)  # before any work
    while True:
        started = catch_up()
        wait(started)
        query = start(spark, args, job, checkpoint, settings, source, kafka)
        log.info("real-time mode started (%s)", query.name)
        try:
            wait(query)
            return
        except StreamingQueryException as e:
            text = str(e)
            if BARRIER_HELD not in text:
                raise
            barrier = text[text.index(BARRIER_HELD) + len(BARRIER_HELD):].split(")", 1)[0].strip() + ")"
            log.info("real-time mode stopped before a barrier, %s: applying it in micro-batches", barrier)
