"""Records lost in Kafka: deleted (retention, delete-records) or gone with a topic deleted and made
again before the job read them. The MySQL tables would silently miss their changes, so the Kafka
source runs with failOnDataLoss and the job stops with an error naming the gap and the way out
(docs/spark.md, "Records lost in Kafka"); --accept-lost-events skips them instead."""
from pyspark import SparkContext


class KafkaDataLost(RuntimeError):
    """Kafka no longer holds records the job has not applied."""


# The loss a BatchWriter met, by job (= query) name, for job.wait: an error raised in the
# foreachBatch function reaches the query's exception as text only.
REPORTED = {}

# Spark's KAFKA_DATA_LOSS sub-classes (kafka-error-conditions.json of spark-sql-kafka) in words.
_WORDS = {
    "COULD_NOT_READ_OFFSET_RANGE": "{topicPartition}: offsets {startOffset} to {endOffset} (exclusive) are gone",
    "START_OFFSET_RESET": "{topicPartition}: the job's next offset is {offset}, the partition now starts at "
                          "{fetchedOffset}",
    "PARTITION_OFFSET_CHANGED": "{topicPartition}: the job had read up to offset {prevOffset}, the partition now ends "
                                "at {newOffset}",
    "ADDED_PARTITION_DOES_NOT_START_FROM_OFFSET_ZERO": "{topicPartition} is new and starts at offset {startOffset}",
    "PARTITIONS_DELETED": "partitions {partitions} were deleted",
    "PARTITIONS_DELETED_AND_GROUP_ID_CONFIG_PRESENT": "partitions {partitions} were deleted",
    "INITIAL_OFFSET_NOT_FOUND_FOR_PARTITIONS": "partitions {partitions} have no offsets any more",
}


def _spark_loss(java_exception):
    """(sub-class, parameters) of the KAFKA_DATA_LOSS among the causes of a Java exception, or None."""
    from py4j.java_gateway import is_instance_of

    cause = java_exception
    while cause is not None:
        if is_instance_of(SparkContext._gateway, cause, "org.apache.spark.SparkThrowable"):
            condition = cause.getCondition() or ""
            if condition.startswith("KAFKA_DATA_LOSS"):
                return condition.partition(".")[2], dict(cause.getMessageParameters())
        cause = cause.getCause()
    return None


def from_java(java_exception, first_offset=None):
    """The KafkaDataLost a Java exception stands for, or None. first_offset(topic, partition), when
    given, gives the partition's first offset now: Spark names the range it tried to read, of which
    only the records before that offset are gone."""
    found = _spark_loss(java_exception) if java_exception is not None else None
    if found is None:
        return None
    kind, params = found
    if "topicPartition" in params:  # a Kafka TopicPartition prints as <topic>-<partition>
        topic, _, partition = params["topicPartition"].rpartition("-")
        params = dict(params, topicPartition=f"topic {topic} partition {partition}")
        if kind == "COULD_NOT_READ_OFFSET_RANGE" and first_offset is not None:
            first = first_offset(topic, int(partition))
            if int(params["startOffset"]) < first < int(params["endOffset"]):
                params["endOffset"] = str(first)
    try:
        gap = _WORDS[kind].format(**params)
    except KeyError:  # a case this version does not know: Spark's parameters as they are
        gap = "; ".join(f"{k} {v}" for k, v in sorted(params.items()))
    return KafkaDataLost(
        f"Kafka no longer holds records this job has not applied: {gap}. They were deleted (retention, "
        "delete-records) or the topic was deleted and made again, and MySQL misses their changes. See "
        "docs/spark.md, \"Records lost in Kafka\": take a new snapshot of the collections, or run the job "
        "with --accept-lost-events to skip the lost records.")
