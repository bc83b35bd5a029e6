"""foreachBatch on the driver: runs the micro-batch's records on the executors, through the C++
apply core (core.py), whole Kafka partitions per task, in rounds for the order across topics.

Exactly once (docs/spark.md, "Exactly once") is the core's: each task writes its partitions' rows
and next offset in one MySQL transaction (`_m2m_offsets`, the native engine's table, under the
job's group) and skips records below the stored offset, so a replayed batch, a retried task or a
new checkpoint folder applies nothing twice. Spark's batch id plays no part.

Order across topics (docs/spark.md): a partition's run stops before a barrier (a drop or rename, or the first
event of a collection without tables) unless the driver released that one. After a round, every
partition is at the end of its range or held; the held barrier that comes first in MongoDB's order
has nothing before it in any other partition of the batch, so the next round releases it. Tasks of
later rounds skip what earlier ones applied."""
import contextlib
import logging
import time

from pyspark import SparkContext

from . import core
from . import lost
from . import transforms as transforms_mod

log = logging.getLogger("m2m_spark")


@contextlib.contextmanager
def kafka_consumer(kafka):
    """A Kafka consumer in the driver's JVM: the connector's own client, so the job's kafka.*
    options apply as they do to the source."""
    jvm = SparkContext._jvm
    props = jvm.java.util.Properties()
    for k, v in {**kafka, "enable.auto.commit": "false", "max.poll.records": "1"}.items():
        props.setProperty(k, v)
    deserializer = jvm.org.apache.kafka.common.serialization.ByteArrayDeserializer
    consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props, deserializer(), deserializer())
    try:
        yield consumer
    finally:
        consumer.close()


def first_offset(kafka, topic, partition):
    """The offset of the first record Kafka holds in a partition."""
    jvm = SparkContext._jvm
    with kafka_consumer(kafka) as consumer:
        wanted = jvm.java.util.ArrayList()
        jtp = jvm.org.apache.kafka.common.TopicPartition(topic, partition)
        wanted.add(jtp)
        return consumer.beginningOffsets(wanted).get(jtp)


class BatchWriter:
    """The foreachBatch function of one job; holds no state between batches."""

    def __init__(self, job, settings, library, kafka):
        """settings: core.Settings of the executors' tasks; library: libm2m_jni.so's path on the
        executors; kafka: properties of a Kafka consumer (bootstrap.servers, security ...) that can read
        the job's partitions' first offsets."""
        self.job, self.settings, self.kafka = job, settings, kafka
        self.tasks = SparkContext._jvm.m2m.spark.BatchTasks(core.jvm_settings(SparkContext._jvm, settings, library))
        self.transforms = transforms_mod.parse(settings.mapping_yaml) if settings.mapping_yaml else {}

    def __call__(self, batch_df, batch_id):
        lost.REPORTED.pop(self.job, None)
        try:
            self.write(batch_df, batch_id)
        except Exception as e:
            # The batch's records are read by its tasks: Kafka's records lost before the job read
            # them surface here (docs/spark.md, "Records lost in Kafka").
            found = lost.from_java(getattr(e, "java_exception", None) or getattr(e, "_origin", None),
                                   lambda topic, partition: first_offset(self.kafka, topic, partition))
            if found is None:
                raise
            lost.REPORTED[self.job] = found
            raise found from None

    def write(self, batch_df, batch_id):
        started = time.monotonic()
        # One task per Kafka partition would run in waves when partitions outnumber the task slots,
        # each wave costing Spark's task launch; whole partitions per task (BatchTasks coalesces, which
        # never splits one) keep each partition's order, and each of a task's partitions stops at its
        # own barrier. A round is one Py4J call: the plan is built in the JVM (docs/spark.md, "Latency").
        slots = batch_df.sparkSession.sparkContext.defaultParallelism
        release, rounds, applied = [], 0, 0
        while True:
            rounds += 1
            outcomes = core.outcomes(self.tasks.round(batch_df._jdf, slots, core.release_lines(release)))
            applied += sum(o["records"] - o["skipped"] for o in outcomes)
            held = [k for k in map(core.held_key, outcomes) if k is not None]
            if not held:
                break
            if set(held) & set(release):  # cannot happen: a released barrier is applied
                raise RuntimeError(f"batch {batch_id}: a released barrier was held again: {sorted(held)}")
            release = core.to_release(held)
            log.info("batch %s: round %s releases %s barrier(s), the first at %s[%s]@%s", batch_id, rounds,
                     len(release), release[0][3], release[0][4], release[0][5])
        if outcomes:  # a replayed batch too: its results may not have been recomputed
            transforms_mod.refresh(batch_df.sparkSession, dict(self.settings.mysql), self.transforms)
        if applied:
            log.info("batch %s: %s records applied from %s partitions in %s round(s), %.2f s", batch_id, applied,
                     len(outcomes), rounds, time.monotonic() - started)
