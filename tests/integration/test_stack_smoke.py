"""The local stack's servers answer the way the pipeline needs: change streams on the MongoDB
stand-in, Kafka through a Spark Structured Streaming query, MariaDB through a Python driver.
(C++ talks to Kafka and MariaDB in core/src/*_integration_test.cc.)"""
import time

import pytest
from bson.timestamp import Timestamp
from confluent_kafka import Producer

import stack


def test_pymongo_write_is_seen_on_the_change_stream(mongo_db):
    coll = mongo_db.orders
    # The stand-in returns no operationTime, so start explicitly from a moment before the writes.
    start = Timestamp(int(time.time()) - 1, 0)
    with coll.watch(start_at_operation_time=start) as stream:
        coll.insert_one({"_id": 1, "customer": {"name": "Ada"}, "total": 12.5})
        coll.delete_one({"_id": 1})
        events = []

        def two_events():
            event = stream.try_next()
            if event is not None:
                events.append(event)
            return len(events) >= 2

        stack.wait_for(two_events, what="two change events")
    assert [e["operationType"] for e in events] == ["insert", "delete"]
    assert events[0]["fullDocument"] == {"_id": 1, "customer": {"name": "Ada"}, "total": 12.5}
    assert events[1]["documentKey"] == {"_id": 1}
    assert events[0]["_id"] != events[1]["_id"]  # distinct resume tokens


def test_mariadb_round_trip(mysql_db):
    name, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO t VALUES (1, 'élan')")
        cur.execute("SELECT id, v FROM t")
        assert cur.fetchall() == ((1, "élan"),)


@pytest.mark.spark
def test_spark_structured_streaming_reads_one_kafka_message(spark, kafka_topic):
    topic = kafka_topic()
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    producer.produce(topic, key=b"doc-1", value=b'{"hello": "spark"}')
    assert producer.flush(30) == 0

    stream = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", stack.KAFKA_BOOTSTRAP)
              .option("subscribe", topic)
              .option("startingOffsets", "earliest")
              .load()
              .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value"))
    sink = stack.unique("smoke")
    query = stream.writeStream.format("memory").queryName(sink).trigger(availableNow=True).start()
    try:
        assert query.awaitTermination(300), "Spark query did not finish within 300s"
    finally:
        query.stop()
    rows = [tuple(r) for r in spark.sql(f"SELECT key, value FROM {sink}").collect()]
    assert rows == [("doc-1", '{"hello": "spark"}')]
