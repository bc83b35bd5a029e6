"""capture against the MongoDB stand-in and the real broker: what pymongo writes lands in Kafka,
keyed by _id, in order, in the documented format (docs/events.md), once."""
import json

from bson import BSON, Binary, json_util
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource

import pipeline
import stack


def capture_topic(prefix, db, coll):
    return f"{prefix}.{db}.{coll}"


def test_changes_land_in_kafka_keyed_ordered_and_complete(mongo_db, tmp_path):
    prefix = stack.unique("cap")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix)
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        orders = mongo_db.orders
        orders.insert_one({"_id": 1, "customer": {"name": "Ada", "city": "Paris"}, "items": [{"sku": "a", "qty": 2}]})
        orders.insert_one({"_id": 2, "customer": {"name": "Bob"}, "total": 10.5})
        orders.update_one({"_id": 1}, {"$set": {"customer.city": "Lyon"}, "$unset": {"items": ""}})
        orders.replace_one({"_id": 2}, {"_id": 2, "status": "void"})
        orders.delete_one({"_id": 1})
        orders.drop()
        messages = pipeline.read_topic(capture_topic(prefix, mongo_db.name, "orders"), 6, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]

    kinds = [v["m2m"]["event"] for _, v in messages]
    assert kinds == ["insert", "insert", "update", "replace", "delete", "drop"]
    assert [v["op"] for _, v in messages[:5]] == ["c", "c", "u", "u", "d"]
    # The key is the canonical Extended JSON of _id: the same bytes for every event of a document.
    assert [json.loads(k["id"]) for k, _ in messages[:5]] == [{"$numberInt": n} for n in "12121"]
    first = json.loads(messages[0][1]["after"])
    assert first["customer"] == {"name": "Ada", "city": "Paris"}
    update = messages[2][1]
    assert json.loads(update["updateDescription"]["updatedFields"]) == {"customer.city": "Lyon"}
    assert update["updateDescription"]["removedFields"] == ["items"]
    assert json.loads(messages[3][1]["after"]) == {"_id": {"$numberInt": "2"}, "status": "void"}
    assert messages[4][1]["after"] is None
    assert all(v["source"]["db"] == mongo_db.name and v["source"]["collection"] == "orders" for _, v in messages)


def test_restart_continues_after_the_last_checkpoint_without_duplicates(mongo_db, tmp_path):
    prefix = stack.unique("cap")
    topic = capture_topic(prefix, mongo_db.name, "events")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "events", prefix=prefix, name="r")
    pipeline.wait_for_checkpoint(prefix, cap)
    mongo_db.events.insert_many([{"_id": i} for i in range(5)])
    pipeline.read_topic(topic, 5, process=cap)
    assert cap.stop() == 0, cap.log()[-3000:]

    mongo_db.events.insert_many([{"_id": i} for i in range(5, 12)])  # while capture is down
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "events", prefix=prefix, name="r")
    try:
        messages = pipeline.read_topic(topic, 12, process=cap)
        mongo_db.events.insert_one({"_id": 12})
        messages = pipeline.read_topic(topic, 13, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    everything = pipeline.read_all(topic)
    ids = [json.loads(v["after"])["_id"]["$numberInt"] for _, v in everything]
    assert ids == [str(i) for i in range(13)]  # each insert once, in order, none lost while down


def test_an_update_read_after_its_document_was_deleted_is_marked_gone_and_lands(mongo_db, mysql_db, tmp_path):
    """Capture reads an update only after the document was deleted (it was down): updateLookup finds
    nothing, so capture marks the update m2m.document_gone. Apply, without --mongo-uri, then does what
    a lookup would (the row and its child rows go) instead of quarantining a delta into a child
    table it cannot apply column by column."""
    database, conn = mysql_db
    prefix = stack.unique("cap")
    topic = capture_topic(prefix, mongo_db.name, "orders")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix, name="g")
    pipeline.wait_for_checkpoint(prefix, cap)
    mongo_db.orders.insert_many([{"_id": 1, "items": [{"sku": "a", "qty": 1}]},
                                 {"_id": 2, "items": [{"sku": "b", "qty": 1}]}])
    pipeline.read_topic(topic, 2, process=cap)
    assert cap.stop() == 0, cap.log()[-3000:]

    mongo_db.orders.update_one({"_id": 1}, {"$push": {"items": {"sku": "c", "qty": 5}}})  # while capture is down
    mongo_db.orders.update_one({"_id": 2}, {"$push": {"items": {"sku": "d", "qty": 6}}})
    mongo_db.orders.delete_one({"_id": 1})
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix, name="g")
    try:
        messages = pipeline.read_topic(topic, 5, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    updates = [v for _, v in messages if v["m2m"]["event"] == "update"]
    assert [(json.loads(v["m2m"]["document_key"])["_id"]["$numberInt"], v["m2m"].get("document_gone"))
            for v in updates] == [("1", True), ("2", None)], updates
    assert updates[0]["after"] is None and json.loads(updates[1]["after"])["items"][1]["qty"]["$numberInt"] == "6"

    pipeline.run_apply(database, stack.unique("g"), topics=[topic])
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT `_id` FROM orders")
        assert [str(r[0]) for r in cur.fetchall()] == ["2"]
        cur.execute("SELECT `_id`, sku, qty FROM orders_items")
        assert sorted(tuple(str(v) for v in r) for r in cur.fetchall()) == [("2", "b", "1"), ("2", "d", "6")]


def test_a_backlog_after_a_restart_is_published_in_batches_not_event_by_event(mongo_db, tmp_path):
    # Catching up reads whole server batches into each Kafka transaction: each transaction adds one
    # checkpoint record, so their count says how the backlog was cut. Event by event would be 2,000.
    backlog = 2000
    prefix = stack.unique("cap")
    topic, checkpoints = capture_topic(prefix, mongo_db.name, "b"), f"{prefix}.__checkpoints"
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "b", prefix=prefix, name="b")
    pipeline.wait_for_checkpoint(prefix, cap)
    assert cap.stop() == 0, cap.log()[-3000:]
    mongo_db.b.insert_many([{"_id": i, "pad": "x" * 300} for i in range(backlog)])  # while capture is down
    before = len(pipeline.read_all_raw(checkpoints))
    # No time limit on a transaction, so only the batching decides (a loaded machine cannot flake it).
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "b", prefix=prefix, name="b", extra=["--max-batch-ms", "60000"])
    try:
        pipeline.read_topic(topic, backlog, timeout=300, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    assert len(pipeline.read_all(topic)) == backlog
    transactions = len(pipeline.read_all_raw(checkpoints)) - before
    assert 1 <= transactions <= backlog // 20, f"{backlog} events took {transactions} transactions"


def test_a_steady_trickle_is_published_as_it_comes_not_when_the_transaction_window_ends(mongo_db, tmp_path):
    # With a 10-minute window and no event limit in reach, only the stream running dry between two
    # writes can close a transaction: events must be readable (read_committed) while writes go on.
    # (Real MongoDB holds an empty getMore for maxAwaitTimeMS, so a trickle never gives capture an
    # empty batch; the stand-in answers at once, which would hide the difference.)
    prefix = stack.unique("cap")
    topic = capture_topic(prefix, mongo_db.name, "trickle")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "trickle", prefix=prefix, name="t",
                                 extra=["--max-batch-ms", "600000", "--max-batch-events", "100000"])
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("reader"),
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    written, seen = 0, []

    def one_more_then_look():
        nonlocal written
        cap.assert_running()
        mongo_db.trickle.insert_one({"_id": written})
        written += 1
        seen.extend(m for m in consumer.consume(100, 0.05) if not m.error())
        return seen

    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        stack.wait_for(one_more_then_look, timeout=180, interval=0.1, what="an event while writes trickle in")
    finally:
        consumer.close()
        assert cap.stop() == 0, cap.log()[-3000:]
    assert 0 < len(seen) <= written
    assert json.loads(json.loads(seen[0].key())["id"]) == {"$numberInt": "0"}


def test_a_drop_reaches_every_partition_after_that_partitions_documents(mongo_db, tmp_path):
    prefix = stack.unique("cap")
    topic = capture_topic(prefix, mongo_db.name, "p")
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "p", prefix=prefix, name="p", extra=["--partitions", "3"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        mongo_db.p.insert_many([{"_id": i} for i in range(12)])
        mongo_db.p.drop()
        pipeline.read_topic(topic, 12 + 3, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    by_partition = pipeline.read_all_by_partition(topic)
    assert sorted(by_partition) == [0, 1, 2]
    for messages in by_partition.values():
        kinds = [v["m2m"]["event"] for _, v in messages]
        assert kinds[-1] == "drop" and kinds.count("drop") == 1 and set(kinds[:-1]) <= {"insert"}
    assert sum(len(m) for m in by_partition.values()) == 15


def test_an_event_over_the_limit_goes_whole_to_the_dead_letter_topic_and_capture_goes_on(mongo_db, tmp_path):
    # The dead-letter topic is sized for any event whatever --max-message-bytes says, so an event of
    # 3 MB of multi-byte text over a 4 KiB limit arrives whole (the record used to keep the first half
    # of the limit, cut inside a character, and dumping it threw: capture died on it at every start).
    prefix = stack.unique("cap")
    topic = capture_topic(prefix, mongo_db.name, "big")
    text = "h\u00e9llo \u2713 " * 300_000
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "big", prefix=prefix, name="dl",
                                 extra=["--max-message-bytes", "4096"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        mongo_db.big.insert_one({"_id": "small-1"})
        mongo_db.big.insert_one({"_id": "huge", "text": text, "blob": Binary(bytes(range(256)) * 1000)})
        mongo_db.big.insert_one({"_id": "small-2"})
        events = pipeline.read_topic(topic, 2, process=cap)
        dead = pipeline.read_topic(f"{prefix}.__dead_letter", 1, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    assert [json.loads(k["id"]) for k, _ in events] == ["small-1", "small-2"]
    record = dead[0][1]
    assert "over capture.max_message_bytes 4096" in record["reason"] and '"huge"' in record["reason"]
    assert record["topic"] == topic and record["resume_token"] and record["capture"] == "dl"
    event = json_util.loads(record["event"])
    assert event["operationType"] == "insert" and event["_id"] == json_util.loads(record["resume_token"])
    assert event["fullDocument"] == {"_id": "huge", "text": text, "blob": bytes(range(256)) * 1000}
    assert record["event_bytes"] == len(BSON.encode(event))
    assert len(pipeline.read_all(topic)) == 2
    # The topics were made for their records: the data topic for 4 KiB events (batches of small ones
    # up to librdkafka's batch.size), the dead-letter topic for whole events of any size.
    configs = topic_configs(topic, f"{prefix}.__dead_letter")
    assert configs[topic]["max.message.bytes"] == 1_000_000
    assert configs[f"{prefix}.__dead_letter"]["max.message.bytes"] == 80 * 1024 * 1024 + 1024
    assert configs[topic]["segment.bytes"] == configs[f"{prefix}.__dead_letter"]["segment.bytes"] == 1 << 30


def topic_configs(*topics):
    """{topic: {setting: int value}} of the size settings of `topics`, as the broker reports them."""
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    return {r.name: {k: int(v.value) for k, v in f.result(60).items() if k in ("max.message.bytes", "segment.bytes")}
            for r, f in admin.describe_configs(resources).items()}
