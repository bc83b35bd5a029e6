"""Memory bounded in bytes (issue 16): capture snapshots documents several times its
--max-buffer-bytes and its peak RSS stays under what the bound allows (docs/checkpoints.md,
"Memory"); apply loads the snapshots of two collections side by side instead of one after the other
(docs/apply.md, "Order across topics": snapshot reads commute)."""
import contextlib
import json
import os
import time

import pymongo
from bson import Binary
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import pipeline
import scenarios
import stack

MIB = 1 << 20


def peak_rss_mib(pid):
    """The process's peak resident set so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def test_capture_rss_stays_under_its_bound_while_snapshotting_several_times_it(tmp_path):
    # A stand-in of the test's own: 240 MiB of inserts would roll the shared one's oplog over under
    # other tests' captures. Its oplog is small; the snapshot starts after the inserts and needs none.
    # It holds the documents in its heap as well as in its store, whose write buffer grows by copies:
    # 512 MiB ran out once (OutOfMemoryError in H2's WriteBuffer while inserting, CI 2026-12-03).
    server = pipeline.start_mongo_standin(tmp_path, env={"M2M_MONGO_OPLOG_MAX_BYTES": str(16 * MIB)}, heap="2g")
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    prefix = stack.unique("mem")
    db = client[stack.unique("t")]
    topic = f"{prefix}.{db.name}.big"
    documents, size = 240, MIB  # 240 MiB of BSON
    # Chunks of 16 documents: the stand-in answers a find or getMore with every document left, not
    # at most 16 MiB as MongoDB does, and a reply over 48 MB is refused by the driver.
    try:
        for first in range(0, documents, 8):
            db.big.insert_many([{"_id": i, "data": Binary(os.urandom(size - 64))} for i in range(first, first + 8)])
        bound = 16 * MIB
        cap = pipeline.start_capture(tmp_path, db.name, "big", prefix=prefix, name=stack.unique("mem"),
                                     extra=["--max-buffer-bytes", str(bound), "--snapshot-chunk-size", "16"],
                                     mongo_uri=server.uri)
        try:
            pipeline.wait_for_checkpoint(prefix, cap)  # the snapshot is done
            peak = peak_rss_mib(cap.proc.pid)
        finally:
            cap.stop()
        # What the bound allows (docs/checkpoints.md, "Memory"): the snapshot's half, the producer's
        # queue (never below the largest record: the dead-letter limit, 80 MiB plus framing), a
        # MongoDB reply per reader (2 readers, a chunk of 16 MiB each), and the process with the event being
        # encoded (its JSON and librdkafka's copy) as slack.
        allowed = bound / 2 / MIB + 81 + 2 * 17 + 48
        assert peak < allowed, f"capture's peak RSS {peak:.0f} MiB is over {allowed:.0f} MiB"
        assert allowed < documents * size / MIB  # the collection could not have been held whole
        print(f"capture peak RSS {peak:.0f} MiB (allowed {allowed:.0f} MiB) for {documents * size // MIB} MiB "
              f"of documents, --max-buffer-bytes {bound // MIB} MiB")
    finally:
        client.close()
        server.stop()
        # 320 MB of records: not left on the shared broker.
        for future in AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP}).delete_topics([topic]).values():
            with contextlib.suppress(KafkaException):  # not made: capture failed first, as reported
                future.result(60)


def test_two_collections_snapshots_are_applied_side_by_side(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    count = 8000
    for name in ("a", "b"):
        for first in range(0, count, 4000):
            mongo_db[name].insert_many([{"_id": i, "name": f"{name}{i}", "pad": "x" * 100}
                                        for i in range(first, first + 4000)])
    prefix = stack.unique("side")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, prefix=prefix, name="side")
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
    finally:
        cap.stop()
    topics = [f"{prefix}.{mongo_db.name}.{name}" for name in ("a", "b")]
    ends = {t: pipeline.topic_end_offsets(t) for t in topics}
    group = stack.unique("g")
    apply = pipeline.start_apply(tmp_path, database, group, topics=topics, extra=["--max-batch-events", "200"])
    both_under_way = False
    try:
        def sample():
            nonlocal both_under_way
            apply.assert_running()
            done = {t: o for (t, _), o in pipeline.applied_offsets(conn, database, group).items()}
            # Before snapshot reads commuted, b's first read waited for a's whole snapshot.
            both_under_way |= all(0 < done.get(t, 0) < ends[t] - 1 for t in topics)
            return all(done.get(t, 0) >= ends[t] - 1 for t in topics)

        stack.wait_for(sample, timeout=300, interval=0.02, what="both snapshots applied")
    finally:
        apply.stop()
    with conn.cursor() as cur:
        for name in ("a", "b"):
            cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{name}`")
            assert cur.fetchone()[0] == count
    assert both_under_way, "one collection's snapshot was applied only after the other's"


def test_a_partition_past_the_gates_byte_bound_is_paused_and_read_again_without_loss(mysql_db):
    """fresh's first event is a barrier (no tables yet) that waits until old's backlog is consumed;
    the 512 KiB events behind it pass the gate's 64 MiB bound (docs/apply.md, "Order across topics"):
    fresh is paused and read again from the first event not kept, and every row lands."""
    database, conn = mysql_db
    prefix = stack.unique("gate")
    old, fresh = f"{prefix}.test.old", f"{prefix}.test.fresh"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for future in admin.create_topics([NewTopic(old, 1, 1), NewTopic(fresh, 1, 1)]).values():
        future.result(60)
    try:
        apply_past_the_bound(database, conn, prefix, old, fresh)
    finally:
        for future in admin.delete_topics([old, fresh]).values():
            future.result(60)


def apply_past_the_bound(database, conn, prefix, old, fresh):
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True,
                         "queue.buffering.max.kbytes": 512 * 1024})
    # The consumer fetches about as many bytes of each partition at a time, so old's backlog must
    # pass the bound too for fresh's queue to reach it before old is consumed.
    old_count, fresh_count, pad = 80000, 200, 512 * 1024
    for i in range(old_count):  # cluster times before fresh's first event
        topic, key, value = scenarios.encode(
            {"op": "insert", "collection": "old", "document": json.dumps({"_id": i, "pad": "o" * 2048})}, prefix, i + 1)
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    for i in range(fresh_count):
        topic, key, value = scenarios.encode(
            {"op": "insert", "collection": "fresh", "document": json.dumps({"_id": i, "pad": "f" * pad})},
            prefix, old_count + 1 + i)
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(120) == 0
    group = stack.unique("g")
    result = pipeline.run_apply(database, group, topics=[old, fresh])
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{database}`.`old`")
        assert cur.fetchone()[0] == old_count
        cur.execute(f"SELECT COUNT(*), SUM(LENGTH(pad)) FROM `{database}`.`fresh`")
        assert cur.fetchone() == (fresh_count, fresh_count * pad)
    assert f"pausing {fresh}[0]" in result.stdout + result.stderr, "the bound was not reached: the test proves nothing"
