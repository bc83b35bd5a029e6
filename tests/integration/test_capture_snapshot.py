"""capture's initial snapshot against the stand-in: 100k documents, written to while the snapshot
runs and while capture is killed mid-snapshot; afterwards the events in Kafka, folded per key, give
every document's final state in MongoDB, and each document was copied exactly once."""
import json
import random
import threading
import time
from collections import Counter

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
