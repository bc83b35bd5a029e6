"""Documents near MongoDB's 16 MiB limit through the real pipeline: capture sizes its topics for
the largest event (docs/checkpoints.md, "Large documents"), apply fetches such records and writes
them to MySQL; a MySQL server whose max_allowed_packet is too small for a row gets a clear error
and the event is quarantined whole; a topic that existed before capture with too small a limit is
refused with the command that fixes it."""
import hashlib
import os
import random
import subprocess

import pymongo
import pymysql
import pytest
from bson import json_util
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

import pipeline
import stack

MIB = 1 << 20
# Escapes (quotes, backslashes, control characters) and characters of 2, 3 and 4 bytes.
WORDS = ["h\u00e9llo", "w\u00f6rld", "\u2713", "\u65e5\u672c\u8a9e", "\U0001f600", "plain", 'say "hi"',
         "back\\slash", "new\nline", "tab\t"]


def text_of(nbytes, seed):
    rng = random.Random(seed)
    words, size = [], 0
    while size < nbytes:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word.encode()) + 1
    return " ".join(words)


def big_document(_id, seed, text_bytes=8 * MIB, blob_bytes=6 * MIB):
    """About 14 MiB of BSON: a long string and a large binary field."""
    return {"_id": _id, "body": text_of(text_bytes, seed), "payload": random.Random(seed).randbytes(blob_bytes),
            "n": 1}


def sha(value):
    return hashlib.sha256(value.encode() if isinstance(value, str) else bytes(value)).hexdigest()


def row_digest(conn, database, _id):
    """(sha256 of body, of payload, n) of the row of `_id`, computed by the server, or None."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT SHA2(body, 256), SHA2(payload, 256), n FROM `{database}`.docs WHERE `_id` = %s", (_id,))
        return cur.fetchone()


def digest(doc):
    return (sha(doc["body"]), sha(doc["payload"]), doc["n"])


def test_a_15_mb_document_inserted_then_updated_lands_exactly_in_mysql(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    prefix = stack.unique("big")
    topic = f"{prefix}.{mongo_db.name}.docs"
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "docs", prefix=prefix, name="big")
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        doc = big_document(1, seed=1)
        mongo_db.docs.insert_one(doc)
        pipeline.read_topic(topic, 1, process=cap)
        pipeline.run_apply(database, stack.unique("g"), topics=[topic])
        assert row_digest(conn, database, 1) == digest(doc)

        # An update of a small field: with updateLookup its event carries the whole document again.
        mongo_db.docs.update_one({"_id": 1}, {"$set": {"n": 2}})
        messages = pipeline.read_topic(topic, 2, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    update = messages[1][1]
    assert update["m2m"]["event"] == "update"
    after = json_util.loads(update["after"])
    assert after == {**doc, "n": 2} and len(json_util.dumps(update)) > 16 * MIB
    group = stack.unique("g")
    pipeline.run_apply(database, group, topics=[topic])
    assert row_digest(conn, database, 1) == digest({**doc, "n": 2})

    # verify reads the row back through the C client and compares it with MongoDB's document.
    result = subprocess.run([str(stack.BINARY), "verify", "--mongo-uri", stack.MONGO_URI, "--db", mongo_db.name,
                             "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
                             "--mysql-user", stack.MYSQL["user"], "--mysql-database", database],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture
def splitting_mongo(tmp_path):
    """A stand-in of the test's own that reports MongoDB 7.0's wire version and splits events over
    16 MiB into fragments, as MongoDB 7.0+ does for capture's $changeStreamSplitLargeEvent stage."""
    server = pipeline.start_mongo_standin(tmp_path, env={"M2M_MONGO_MAX_WIRE_VERSION": "21"})
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    yield server, client
    client.close()
    server.stop()


def test_an_update_event_of_three_large_documents_travels_whole_to_mysql(splitting_mongo, mysql_db, tmp_path):
    # The largest events MongoDB sends: the update description, the looked-up document and the
    # pre-image each hold the large values, about 38 MiB of BSON in fragments, joined by capture into
    # one Kafka record within the default limit.
    server, client = splitting_mongo
    database, conn = mysql_db
    db = client[stack.unique("t")]
    prefix = stack.unique("big3")
    topic = f"{prefix}.{db.name}.docs"
    cap = pipeline.start_capture(tmp_path, db.name, "docs", prefix=prefix, name="big3", mongo_uri=server.uri,
                                 extra=["--before-change", "whenAvailable"])
    try:
        pipeline.wait_for_checkpoint(prefix, cap)
        doc = big_document(1, seed=2, blob_bytes=5 * MIB)
        db.docs.insert_one(doc)
        body = text_of(8 * MIB, seed=3)
        db.docs.update_one({"_id": 1}, {"$set": {"body": body}})
        messages = pipeline.read_topic(topic, 2, timeout=300, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    update = messages[1][1]
    assert len(json_util.dumps(update)) > 48 * MIB  # 53 MB when this was written
    assert json_util.loads(update["before"]) == doc
    assert json_util.loads(update["after"]) == {**doc, "body": body}
    assert json_util.loads(update["updateDescription"]["updatedFields"]) == {"body": body}
    pipeline.run_apply(database, stack.unique("g"), topics=[topic])
    assert row_digest(conn, database, 1) == digest({**doc, "body": body})


def test_a_row_over_max_allowed_packet_is_quarantined_whole_with_the_setting_to_raise(mongo_db, tmp_path):
    # A server with MySQL 5.7's default max_allowed_packet (4 MiB): the row of a 3 MiB binary field
    # (written in hex, 6 MiB) cannot be sent. apply used to lose its connection on it and retry until
    # it gave up; now the event is quarantined with an error naming the document and the setting,
    # its raw bytes in parts, and the events after it are applied.
    server = pipeline.start_mariadb(tmp_path, "--max-allowed-packet=4M")
    try:
        conn = pymysql.connect(**server.mysql, autocommit=True)
        database = stack.unique("t")
        prefix = stack.unique("pkt")
        topic = f"{prefix}.{mongo_db.name}.docs"
        cap = pipeline.start_capture(tmp_path, mongo_db.name, "docs", prefix=prefix, name="pkt")
        try:
            pipeline.wait_for_checkpoint(prefix, cap)
            large = {"_id": 1, "payload": random.Random(4).randbytes(3 * MIB), "n": 1}
            mongo_db.docs.insert_one(large)
            mongo_db.docs.insert_one({"_id": 2, "payload": b"small", "n": 2})
            messages = pipeline.read_topic(topic, 2, process=cap)
        finally:
            assert cap.stop() == 0, cap.log()[-3000:]
        group = stack.unique("g")
        args = ["--mysql-port", server.mysql["port"]]
        pipeline.run_apply(database, group, topics=[topic], extra=args)

        with conn.cursor() as cur:
            cur.execute(f"SELECT `_id`, n FROM `{database}`.docs")
            assert cur.fetchall() == ((2, 2),)
            cur.execute(f"SELECT id, topic, `offset`, msg_key, raw_event, error FROM `{database}`._m2m_quarantine")
            [(qid, qtopic, offset, key, raw_event, error)] = cur.fetchall()
            cur.execute(f"SELECT bytes FROM `{database}`._m2m_quarantine_parts WHERE quarantine_id = %s ORDER BY part",
                        (qid,))
            parts = [r[0] for r in cur.fetchall()]
        assert (qtopic.decode(), offset, raw_event) == (topic, 0, None)
        assert "docs _id=1" in error and "max_allowed_packet of 4194304" in error and "SET GLOBAL" in error, error
        assert len(parts) > 1 and all(len(p) < 4 * MIB for p in parts)
        raw = b"".join(parts)
        assert raw.decode() == pipeline.read_all_raw(topic)[0][1]
        assert json_util.loads(messages[0][1]["after"]) == large

        # The way out the error gives: a larger packet, then the quarantined event replayed, from the
        # document as MongoDB holds it now (a field set since).
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
        mongo_db.docs.update_one({"_id": 1}, {"$set": {"n": 5}})
        replay = subprocess.run([str(stack.BINARY), "quarantine", "replay", "--all", "--mongo-uri", stack.MONGO_URI,
                                 "--mysql-host", stack.HOST, "--mysql-port", str(server.mysql["port"]),
                                 "--mysql-database", database], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
        assert replay.returncode == 0 and "1 replayed" in replay.stdout, replay.stdout + replay.stderr
        with conn.cursor() as cur:
            cur.execute(f"SELECT SHA2(payload, 256), n FROM `{database}`.docs WHERE `_id` = 1")
            assert cur.fetchone() == (sha(large["payload"]), 5)
        conn.close()
    finally:
        assert server.stop() == 0, server.log()[-3000:]


def test_an_existing_topic_too_small_for_the_largest_event_is_refused_with_the_command_that_fixes_it(
        mongo_db, tmp_path):
    prefix = stack.unique("small")
    topic = f"{prefix}.{mongo_db.name}.docs"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "1000000"})])[topic].result(60)
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "docs", prefix=prefix, name="small")
    pipeline.wait_for_checkpoint(prefix, cap)
    mongo_db.docs.insert_one({"_id": 1})
    assert cap.proc.wait(120) != 0
    log = cap.log()
    needed = 80 * MIB + 1024
    assert f"topic {topic} has max.message.bytes=1000000" in log, log[-3000:]
    command = (f"kafka-configs.sh --bootstrap-server {stack.KAFKA_BOOTSTRAP} --alter --entity-type topics "
               f"--entity-name {topic} --add-config max.message.bytes={needed}")
    assert command in log, log[-3000:]
    # The other way out: a limit the topic holds as it is (Kafka's default topic holds 1047564).
    assert f"or run capture with --max-message-bytes {1_000_000 - 1024} or less" in log, log[-3000:]
    assert pipeline.topic_end_offsets(topic) == 0

    # Done as the error says (the local broker's segments are smaller than the record too), the
    # same capture goes on from its checkpoint and publishes the event.
    settings = {"max.message.bytes": needed, "segment.bytes": 1 << 30}
    raise_them = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()])
    for done in admin.incremental_alter_configs([raise_them]).values():
        done.result(60)
    cap = pipeline.start_capture(tmp_path, mongo_db.name, "docs", prefix=prefix, name="small")
    try:
        [(key, value)] = pipeline.read_topic(topic, 1, process=cap)
    finally:
        assert cap.stop() == 0, cap.log()[-3000:]
    assert value["m2m"]["event"] == "insert"
