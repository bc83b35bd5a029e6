"""capture's initial snapshot against the stand-in: 100k documents, written to while the snapshot
runs and while capture is killed mid-snapshot; afterwards the events in Kafka, folded per key, give
every document's final state in MongoDB, and each document was copied exactly once. Also: _ids of
every type, an _id no range can cover, and MongoDB going away in the middle of the copy."""
import datetime
import json
import random
import threading
import time
from collections import Counter

import pymongo
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

import pipeline
import stack

DOCS = 100_000


def test_snapshot_of_100k_documents_with_writes_and_a_kill_gives_every_final_state(mongo_db, tmp_path):
    docs = [{"_id": i, "name": f"customer {i}", "address": {"city": "Paris", "zip": f"{i % 100000:05d}"},
             "orders": [{"sku": f"s{i % 7}", "qty": i % 5}], "score": i * 0.5} for i in range(DOCS)]
    for start in range(0, DOCS, 10_000):
        mongo_db.c.insert_many(docs[start:start + 10_000])
    prefix = stack.unique("snap")
    topic = f"{prefix}.{mongo_db.name}.c"
    # The stand-in scans the collection for every chunk (real MongoDB walks the _id index): few chunks.
    extra = ["--snapshot-chunk-size", "10000"]

    rng = random.Random(3)
    writing = threading.Event()
    writing.set()

    def writer():
        # A bounded burst of updates, inserts and deletes while the snapshot is planned and copied.
        n = DOCS
        while writing.is_set() and n < DOCS + 1500:
            i = rng.randrange(DOCS)
            mongo_db.c.update_one({"_id": i}, {"$set": {"score": -1, "address.city": "Lyon"}})
            mongo_db.c.insert_one({"_id": n, "name": "late"})
            mongo_db.c.delete_one({"_id": rng.randrange(DOCS)})
            n += 1
            time.sleep(0.02)

    cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="snap", extra=extra)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Kill once some chunks are committed but the copy is not finished.
        stack.wait_for(lambda: cap.assert_running() or pipeline.topic_end_offsets(topic) > 20_000, timeout=300,
                       what="part of the snapshot")
        cap.kill()
        log_before = cap.log()
        cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="snap", extra=extra)
        pipeline.wait_for_checkpoint(prefix, cap, timeout=600)
        writing.clear()
        thread.join()
        mongo_db.c.insert_one({"_id": "sentinel"})  # the last write: once it is in Kafka, all are
        messages = pipeline.read_until(topic, lambda k, v: k is not None and json.loads(k["id"]) == "sentinel",
                                       process=cap)
        expected = pipeline.mongo_state(mongo_db.c)
    finally:
        writing.clear()
        thread.join()
        assert cap.stop() == 0, cap.log()[-3000:]

    assert "snapshot" in log_before and "resuming after checkpoint" in cap.log()
    reads = Counter(k["id"] for k, v in messages if v["op"] == "r")
    assert max(reads.values()) == 1, "a document was copied twice"
    assert len(reads) >= DOCS * 0.9  # deletes during the copy remove some before they are read
    assert pipeline.fold(messages) == expected


def test_a_collection_of_every_id_type_is_copied_once_per_document_in_chunks_per_type_class(mongo_db, tmp_path):
    # Range queries compare only within a type class, so the plan cuts each class on its own: with
    # chunks of 2, the numbers (int, long, double, Decimal128) and the strings span several chunks.
    ids = [MinKey(), None, 1, Int64(2), 2.5, Decimal128("3.25"), 4, "a", "b", "c", {"k": 1}, {"k": 2},
           Binary(b"\x01", 0), ObjectId(), ObjectId(), False, True, datetime.datetime(2024, 1, 1),
           Timestamp(1, 1), MaxKey()]
    mongo_db.c.insert_many([{"_id": _id, "n": i} for i, _id in enumerate(ids)])
    prefix = stack.unique("snapids")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="ids",
                                 extra=["--snapshot-chunk-size", "2"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    messages = pipeline.read_all(f"{prefix}.{mongo_db.name}.c")
    reads = Counter(k["id"] for k, v in messages if v["op"] == "r")
    assert len(reads) == len(ids) and max(reads.values()) == 1
    assert pipeline.fold(messages) == pipeline.mongo_state(mongo_db.c)
    assert f"{len(ids)} documents in 14 chunks" in cap.log()


def test_ids_no_range_can_cover_are_copied_whole_in_their_own_chunk(mongo_db, tmp_path):
    """MongoDB refuses a regular expression as a range bound: regex _ids (valid documents) are read
    by type in one chunk of their own, after the ranged ones, each exactly once."""
    mongo_db.c.insert_many([{"_id": 1}, {"_id": Regex("^a")}, {"_id": "x"}, {"_id": Regex("^a", "i")}, {"_id": 2}])
    prefix = stack.unique("snapregex")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="rx", extra=["--snapshot-chunk-size", "1"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    messages = pipeline.read_all(f"{prefix}.{mongo_db.name}.c")
    reads = Counter(k["id"] for k, v in messages if v["op"] == "r")
    assert len(reads) == 5 and max(reads.values()) == 1, reads
    assert pipeline.fold(messages) == pipeline.mongo_state(mongo_db.c)
    assert "5 documents in 4 chunks" in cap.log(), cap.log()[-3000:]


def test_mongodb_going_away_mid_snapshot_and_mid_stream_is_waited_out_without_loss_or_repeats(tmp_path):
    server = pipeline.start_mongo_standin(tmp_path)
    port = int(server.uri.rsplit(":", 1)[1])

    def restart(server, cap, retries_before):
        """Stops the stand-in until capture has logged a retry more than `retries_before`."""
        server.stop()  # SIGTERM: the stand-in flushes its data for the restart
        stack.wait_for(lambda: cap.assert_running() or cap.log().count("trying again in") +
                       cap.log().count("going on at the first unfinished chunk") > retries_before, timeout=120,
                       what="capture to notice that MongoDB is gone")
        return pipeline.start_mongo_standin(tmp_path, port=port)

    n = 20_000
    pymongo.MongoClient(server.uri)["snapfail"].c.insert_many([{"_id": i, "pad": "x" * 200} for i in range(n)])
    prefix = stack.unique("snapfail")
    topic = f"{prefix}.snapfail.c"
    # Small chunks make a long copy on the stand-in, which scans the collection for each.
    cap = pipeline.start_capture(tmp_path, "snapfail", "c", prefix=prefix, name="fail", mongo_uri=server.uri,
                                 extra=["--snapshot-chunk-size", "100", "--snapshot-parallelism", "1"])
    try:
        stack.wait_for(lambda: cap.assert_running() or pipeline.topic_end_offsets(topic) >= 1000, timeout=300,
                       what="part of the snapshot")
        server = restart(server, cap, 0)
        pipeline.wait_for_checkpoint(prefix, cap, timeout=300)
        assert "snapshot complete" in cap.log() and "going on at the first unfinished chunk" in cap.log()
        coll = pymongo.MongoClient(server.uri)["snapfail"].c
        coll.update_many({"_id": {"$lt": 100}}, {"$set": {"pad": "before"}})
        server = restart(server, cap, 1)
        coll = pymongo.MongoClient(server.uri)["snapfail"].c
        coll.update_many({"_id": {"$gte": 100, "$lt": 200}}, {"$set": {"pad": "after"}})
        coll.insert_one({"_id": "sentinel"})
        messages = pipeline.read_until(topic, lambda k, v: pipeline.has_id(k, "sentinel"), process=cap)
        expected = pipeline.mongo_state(coll)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
        server.stop()
    reads = Counter(k["id"] for k, v in messages if v["op"] == "r")
    assert len(reads) == n and max(reads.values()) == 1, "a document was copied twice or not at all"
    updates = Counter(k["id"] for k, v in messages if v["op"] == "u")
    assert len(updates) == 200 and max(updates.values()) == 1, "a change was lost or published twice"
    assert pipeline.fold(messages) == expected


def test_a_parallel_snapshot_of_several_collections_copies_every_document_exactly_once(mongo_db, tmp_path):
    # Four readers over many small chunks of several collections: the workers read chunk bounds while
    # the publisher commits the progress of the chunks before (issue 16: they once read a plan the
    # publisher was replacing).
    collections = {f"c{k}": 600 + 150 * k for k in range(4)}
    for name, n in collections.items():
        mongo_db[name].insert_many([{"_id": i, "n": i, "c": name} for i in range(n)])
    prefix = stack.unique("snappar")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, prefix=prefix, name="par",
                                 extra=["--snapshot-chunk-size", "20", "--snapshot-parallelism", "4"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap, timeout=600)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    assert "snapshot complete" in cap.log()
    for name, n in collections.items():
        messages = pipeline.read_all(f"{prefix}.{mongo_db.name}.{name}")
        reads = Counter(k["id"] for k, v in messages if v["op"] == "r")
        assert len(reads) == n and max(reads.values()) == 1, f"{name}: a document was copied twice or not at all"
        assert pipeline.fold(messages) == pipeline.mongo_state(mongo_db[name])
