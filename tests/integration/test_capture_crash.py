"""kill -9 capture at random moments while MongoDB is written to; afterwards a read_committed
consumer sees every change exactly once and in order."""
import json
import random
import threading
import time

import pipeline
import stack

KILLS = 20


def test_kill_9_twenty_times_loses_and_repeats_nothing(mongo_db, tmp_path):
    prefix = stack.unique("crash")
    topic = f"{prefix}.{mongo_db.name}.c"
    rng = random.Random(7)
    writing = threading.Event()
    writing.set()
    written = []

    def writer():
        # Inserts and updates of a few documents, so both kinds of event cross the kill windows.
        coll, n = mongo_db.c, 0
        while writing.is_set():
            coll.insert_one({"_id": n, "v": 0})
            written.append(("insert", n))
            if n % 3 == 0:
                coll.update_one({"_id": n}, {"$set": {"v": 1}})
                written.append(("update", n))
            n += 1
            time.sleep(0.005)

    cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="crash",
                                 extra=["--max-batch-events", "50"])
    # Changes made before capture's first committed checkpoint belong to the snapshot, not the stream.
    pipeline.wait_for_checkpoint(prefix, cap)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            cap.kill()
            cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="crash",
                                         extra=["--max-batch-events", "50"])
        writing.clear()
        thread.join()
        pipeline.read_topic(topic, len(written), timeout=300, process=cap)
    finally:
        writing.clear()
        thread.join()
        assert cap.stop() == 0, cap.log()[-3000:]

    seen = [(v["m2m"]["event"], json.loads(k["id"])["$numberInt"]) for k, v in pipeline.read_all(topic)]
    assert len(written) > 200
    assert seen == [(kind, str(n)) for kind, n in written]
