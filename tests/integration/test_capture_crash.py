"""kill -9 capture at random moments during its snapshot and while MongoDB is written to; afterwards
a read_committed consumer sees every document copied exactly once and every change exactly once, in
order."""
import json
import random
import threading
import time

import pipeline
import stack

KILLS = 20
PRELOADED = 10_000


def test_kill_9_twenty_times_during_snapshot_and_stream_loses_and_repeats_nothing(mongo_db, tmp_path):
    mongo_db.c.insert_many([{"_id": i, "v": -1} for i in range(PRELOADED)])
    prefix = stack.unique("crash")
    topic = f"{prefix}.{mongo_db.name}.c"
    rng = random.Random(7)
    writing = threading.Event()
    writing.set()
    written = []

    def writer():
        # Inserts and updates of a few documents, so both kinds of event cross the kill windows.
        coll, n = mongo_db.c, PRELOADED
        while writing.is_set():
            coll.insert_one({"_id": n, "v": 0})
            written.append(("insert", n))
            if n % 3 == 0:
                coll.update_one({"_id": n}, {"$set": {"v": 1}})
                written.append(("update", n))
            n += 1
            time.sleep(0.005)

    extra = ["--max-batch-events", "50", "--snapshot-chunk-size", "200", "--snapshot-parallelism", "1"]
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="crash", extra=extra)
    # Changes made before capture's start point belong to the snapshot; after it, to the stream.
    pipeline.wait_for_checkpoint(prefix, cap, snapshot_done=False)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        def kill_and_restart():
            nonlocal cap
            time.sleep(rng.uniform(0.2, 1.5))
            cap.kill()
            cap = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="crash", extra=extra)

        for _ in range(KILLS // 2):  # during the snapshot
            kill_and_restart()
        pipeline.wait_for_checkpoint(prefix, cap, timeout=600)
        for _ in range(KILLS - KILLS // 2):  # while streaming
            kill_and_restart()
        stack.wait_for(lambda: len(written) > 200, timeout=300, what="200 changes from the writer")
        writing.clear()
        thread.join()
        # The last change: once it is in Kafka, every earlier one is.
        sentinel = 10 * PRELOADED
        mongo_db.c.insert_one({"_id": sentinel})
        written.append(("insert", sentinel))
        pipeline.read_until(topic, lambda k, v: k is not None and json.loads(k["id"]) == {"$numberInt": str(sentinel)},
                            process=cap)
    finally:
        writing.clear()
        thread.join()
        assert cap.stop() == 0, cap.log()[-3000:]

    messages = pipeline.read_all(topic)
    reads = [int(json.loads(k["id"])["$numberInt"]) for k, v in messages if v["op"] == "r"]
    assert len(reads) == len(set(reads)), "a document was copied twice"
    # Every preloaded document was copied; chunks read after the writer began copy its documents too.
    assert set(range(PRELOADED)) <= set(reads)
    # The stream starts at capture's start point, which may precede the copy of a preloaded document
    # (docs/checkpoints.md: the overlap converges); the writer's changes must each appear exactly once.
    seen = [(v["m2m"]["event"], json.loads(k["id"])["$numberInt"]) for k, v in messages
            if v["op"] != "r" and int(json.loads(k["id"])["$numberInt"]) >= PRELOADED]
    assert len(written) > 200
    assert seen == [(kind, str(n)) for kind, n in written]
    # The kills landed in both phases: some restarts resumed an unfinished snapshot, some the stream.
    restarts = [line for line in cap.log_path.read_text().splitlines() if "resuming after checkpoint" in line]
    assert any('"snapshot":"pending"' in line for line in restarts)
    assert any('"snapshot":"done"' in line for line in restarts)
