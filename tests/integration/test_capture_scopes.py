"""capture at database scope (--db) and deployment scope (neither --db nor --collection), with
include and exclude lists by name and /regex/: each published collection's topic ends with the
collection's final state (snapshot plus stream), drops and dropDatabase are handled, and excluded
collections get no topic at all. Also pre-images (--before-change) through capture. The stand-in is the test module's own, so the deployment holds only
what these tests write."""
import json

import pymongo
import pytest
from bson import json_util

import pipeline
import stack


@pytest.fixture(scope="module")
def own_mongo(tmp_path_factory):
    server = pipeline.start_mongo_standin(tmp_path_factory.mktemp("mongo"))
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    yield server, client
    client.close()
    server.stop()


def seed(db, collections):
    for name in collections:
        db[name].insert_many([{"_id": i, "coll": name, "v": 0} for i in range(3)])


def change(db, collections):
    for name in collections:
        db[name].insert_one({"_id": 10, "coll": name, "v": 1})
        db[name].update_one({"_id": 0}, {"$set": {"v": 2}})
        db[name].replace_one({"_id": 1}, {"coll": name, "v": 3})
        db[name].delete_one({"_id": 2})


def wait_for_sentinel(topic, cap):
    return pipeline.read_until(topic, lambda k, v: pipeline.has_id(k, "sentinel"), process=cap)


def assert_final_state(prefix, db, name, cap):
    topic = f"{prefix}.{db.name}.{name}"
    messages = pipeline.read_all(topic) if cap is None else wait_for_sentinel(topic, cap)
    assert pipeline.fold(messages) == pipeline.mongo_state(db[name]), topic
    return messages


def test_database_scope_publishes_the_included_collections_and_follows_drops(own_mongo, tmp_path):
    server, client = own_mongo
    db = client[stack.unique("t")]
    published, excluded = ["orders", "customers"], ["audit", "tmp_1", "tmp_2"]
    seed(db, published + excluded)
    prefix = stack.unique("dbscope")
    cap = pipeline.start_capture(tmp_path, db.name, prefix=prefix, name="db", mongo_uri=server.uri,
                                 extra=["--exclude", f"{db.name}.audit", "--exclude", r"/\.tmp_\d$/"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        change(db, published + excluded)
        db.customers.insert_one({"_id": "sentinel"})
        assert_final_state(prefix, db, "customers", cap)
        # A dropped collection's stream would end; the database's goes on.
        db.customers.drop()
        db.orders.insert_one({"_id": "sentinel"})
        assert_final_state(prefix, db, "orders", cap)
        # dropDatabase ends the database's stream with invalidate; capture continues after it with
        # whatever is written to the database next.
        client.drop_database(db.name)
        db.orders.insert_one({"_id": "after", "v": 4})
        db.orders.insert_one({"_id": "sentinel2"})
        pipeline.read_until(f"{prefix}.{db.name}.orders",
                            lambda k, v: pipeline.has_id(k, "sentinel2"), process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    customers = pipeline.read_all(f"{prefix}.{db.name}.customers")
    assert customers[-1][1]["m2m"]["event"] == "drop"
    orders = pipeline.read_all(f"{prefix}.{db.name}.orders")
    kinds = [v["m2m"]["event"] for _, v in orders]
    assert kinds.count("drop") == 1 and kinds.index("drop") < len(kinds) - 2  # dropped with the database
    assert [json.loads(k["id"]) for k, _ in orders[-2:]] == ["after", "sentinel2"]
    assert f"database {db.name} dropped" in cap.log()
    for name in excluded:
        assert pipeline.topic_end_offsets(f"{prefix}.{db.name}.{name}") == 0, name


def test_deployment_scope_publishes_included_databases_and_collections_only(own_mongo, tmp_path):
    server, client = own_mongo
    one, two, other = (client[stack.unique(p)] for p in ("one", "two", "other"))
    seed(one, ["a", "secret"])
    seed(two, ["b", "c"])
    seed(other, ["a"])
    prefix = stack.unique("deploy")
    # Everything of `one` but one.secret; of `two`, only b; nothing of `other`.
    cap = pipeline.start_capture(tmp_path, None, prefix=prefix, name="all", mongo_uri=server.uri,
                                 extra=["--include", f"/^{one.name}\\./", "--include", f"{two.name}.b",
                                        "--exclude", f"{one.name}.secret"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        change(one, ["a", "secret"])
        change(two, ["b", "c"])
        change(other, ["a"])
        one.fresh.insert_one({"_id": 1, "v": "new collection, matched by the regex"})
        client.drop_database(other.name)
        for db, name in ((one, "fresh"), (one, "a"), (two, "b")):
            db[name].insert_one({"_id": "sentinel"})
            assert_final_state(prefix, db, name, cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    for db, name in ((one, "secret"), (two, "c"), (other, "a")):
        assert pipeline.topic_end_offsets(f"{prefix}.{db.name}.{name}") == 0, f"{db.name}.{name}"
    # Snapshot reads, then stream events: 3 copied documents and 4 changes before the sentinel.
    ops = [v["op"] for _, v in pipeline.read_all(f"{prefix}.{two.name}.b")]
    assert ops == ["r", "r", "r", "c", "u", "u", "d", "c"]


def test_pre_images_reach_kafka_as_before(own_mongo, tmp_path):
    server, client = own_mongo
    db = client[stack.unique("t")]
    prefix = stack.unique("pre")
    cap = pipeline.start_capture(tmp_path, db.name, "c", prefix=prefix, name="pre", mongo_uri=server.uri,
                                 extra=["--before-change", "whenAvailable", "--full-document", "default"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        db.c.insert_one({"_id": 1, "v": 0, "tags": ["a"]})
        db.c.update_one({"_id": 1}, {"$set": {"v": 1}, "$push": {"tags": "b"}})
        db.c.replace_one({"_id": 1}, {"v": 2})
        db.c.delete_one({"_id": 1})
        messages = pipeline.read_topic(f"{prefix}.{db.name}.c", 4, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    before = [None if v["before"] is None else json_util.loads(v["before"]) for _, v in messages]
    assert before == [None, {"_id": 1, "v": 0, "tags": ["a"]}, {"_id": 1, "v": 1, "tags": ["a", "b"]},
                      {"_id": 1, "v": 2}]
    # --full-document default: the update carries its delta and no looked-up document.
    assert messages[1][1]["after"] is None
    assert json_util.loads(messages[1][1]["updateDescription"]["updatedFields"]) == {"v": 1, "tags": ["a", "b"]}
