"""Events larger than the server's limit: capture adds $changeStreamSplitLargeEvent to its stream on a
MongoDB 7.0+ server and reassembles the fragments, so the event reaches Kafka whole. The stand-in of
the test's own reports 7.0's wire version and splits events over 64 KiB in the real shape (a stream
without the stage fails on them with BSONObjectTooLarge, as MongoDB's does)."""
import json

import pymongo
import pytest

import pipeline
import stack

SPLIT_BYTES = 64 * 1024
BLOB = 100_000  # one field over the limit: an event with two such fields is split in three or more


@pytest.fixture
def splitting_mongo(tmp_path):
    server = pipeline.start_mongo_standin(tmp_path, env={"M2M_MONGO_MAX_WIRE_VERSION": "21",
                                                         "M2M_MONGO_SPLIT_EVENT_BYTES": str(SPLIT_BYTES)})
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    yield server, client
    client.close()
    server.stop()


def test_an_event_over_the_limit_arrives_whole_in_kafka(splitting_mongo, tmp_path):
    server, client = splitting_mongo
    db = client[stack.unique("t")]
    prefix = stack.unique("split")
    topic = f"{prefix}.{db.name}.c"
    cap = pipeline.start_capture(tmp_path, db.name, "c", prefix=prefix, name="split", mongo_uri=server.uri,
                                 extra=["--before-change", "whenAvailable"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        start = db.command("ping")["operationTime"]
        db.c.insert_one({"_id": 1, "blob": "a" * BLOB})
        # updateDescription, fullDocument and fullDocumentBeforeChange each hold a blob.
        db.c.update_one({"_id": 1}, {"$set": {"blob": "b" * BLOB}})
        db.c.insert_one({"_id": 2, "small": True})
        messages = pipeline.read_topic(topic, 3, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    assert [v["m2m"]["event"] for _, v in messages] == ["insert", "update", "insert"]
    assert json.loads(messages[0][1]["after"])["blob"] == "a" * BLOB
    update = messages[1][1]
    assert json.loads(update["after"])["blob"] == "b" * BLOB
    assert json.loads(update["before"])["blob"] == "a" * BLOB
    assert json.loads(update["updateDescription"]["updatedFields"]) == {"blob": "b" * BLOB}
    assert json.loads(messages[2][1]["after"]) == {"_id": {"$numberInt": "2"}, "small": True}
    assert len(pipeline.read_all(topic)) == 3

    # What capture read were fragments: the same events through pymongo with the stage.
    options = dict(full_document="updateLookup", full_document_before_change="whenAvailable")
    with db.c.watch([{"$changeStreamSplitLargeEvent": {}}], start_at_operation_time=start, **options) as stream:
        fragments = [stream.next() for _ in range(6)]
    assert [f["splitEvent"] for f in fragments] == [{"fragment": 1, "of": 2}, {"fragment": 2, "of": 2}] + [
        {"fragment": n, "of": 4} for n in range(1, 5)]
    # A fragment's token resumes at the next fragment.
    with db.c.watch([{"$changeStreamSplitLargeEvent": {}}], resume_after=fragments[3]["_id"], **options) as stream:
        assert stream.next()["splitEvent"] == {"fragment": 3, "of": 4}
