"""capture when its resume point has fallen off the oplog: against a stand-in of the test's own whose
oplog is capped at a few entries (the shared stand-in's cap is too large to reach), a capture stopped
while writes push its checkpoint out of the oplog refuses to restart, naming the collection and the way
out; `--resnapshot` then brings every document's final state to Kafka. On the way, the oplog window
and lag figures appear in the log."""
import re

import pymongo
import pytest

import pipeline
import stack

OPLOG_EVENTS = 30


@pytest.fixture
def small_oplog_mongo(tmp_path):
    server = pipeline.start_mongo_standin(tmp_path, env={"M2M_MONGO_OPLOG_MAX_EVENTS": str(OPLOG_EVENTS)})
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    yield server, client
    client.close()
    server.stop()


def test_history_lost_stops_with_the_way_out_and_resnapshot_recovers(small_oplog_mongo, tmp_path):
    server, client = small_oplog_mongo
    db = client[stack.unique("t")]
    prefix = stack.unique("lost")
    topic = f"{prefix}.{db.name}.c"

    def capture(*extra):
        return pipeline.start_capture(tmp_path, db.name, "c", prefix=prefix, name="lost", mongo_uri=server.uri,
                                      extra=extra)

    cap = capture()
    pipeline.wait_for_checkpoint(prefix, cap)
    db.c.insert_many([{"_id": i, "v": 0} for i in range(5)])
    pipeline.read_topic(topic, 5, process=cap)
    assert cap.stop() == 0, cap.log()[-3000:]

    # While capture is down, more changes than the oplog holds: its checkpoint token falls off.
    for i in range(5, 5 + OPLOG_EVENTS):
        db.c.insert_one({"_id": i, "v": 0})
    db.c.update_many({"_id": {"$lt": 10}}, {"$set": {"v": 1}})
    db.c.delete_many({"_id": {"$in": [0, 7]}})

    cap = capture()
    assert cap.proc.wait(120) != 0, cap.log()[-3000:]
    log = cap.log()
    assert "Resume of change stream was not possible" in log, log[-3000:]
    assert f"Changes to {db.name}.c made after the last checkpoint are gone from the oplog" in log, log[-3000:]
    assert "--resnapshot" in log
    # Nothing after the checkpoint was published: the restart added no event.
    assert len(pipeline.read_all(topic)) == 5

    cap = capture("--resnapshot")
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        db.c.update_one({"_id": 1}, {"$set": {"v": 2}})
        db.c.delete_one({"_id": 2})
        db.c.insert_one({"_id": "sentinel"})
        messages = pipeline.read_until(topic, lambda k, v: pipeline.has_id(k, "sentinel"), process=cap)
        # Every 10 s capture reports its lag (0 when caught up) and the oplog window (now minus the
        # oldest entry, which the writes above made recent).
        figures = stack.wait_for(lambda: cap.assert_running() or re.search(r"lag (\d+) s, oplog window (\d+) s",
                                                                           cap.log()), timeout=120, what="the figures")
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    # The re-snapshot's events alone give the final state: a consumer that cleared the collection's
    # target (deletes in the lost interval are in no event) converges to MongoDB.
    after_resnapshot = messages[5:]
    assert pipeline.fold(after_resnapshot) == pipeline.mongo_state(db.c)
    reads = {k["id"] for k, v in after_resnapshot if v["op"] == "r"}
    assert len(reads) == 5 + OPLOG_EVENTS - 2  # every document present when the copy began, once
    lag, window = int(figures.group(1)), int(figures.group(2))
    assert 0 <= lag <= window < 600, figures.group(0)  # the last event published is in the oplog
