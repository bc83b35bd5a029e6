"""mongo2mysql apply end to end: real capture into real apply, crashes (kill -9) while events flow,
two members of one group, quarantine of bad events, Debezium's event format. Every test compares
the MySQL rows with the state the events must produce."""
import json
import random
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import pipeline
import scenarios
import stack

# ---------------------------------------------------------------------------------------------
# A workload with a known final state: documents of about 0.5 KB (a sub-document, an array of
# sub-documents), inserted, replaced, updated by delta and deleted at random.


class Workload:
    def __init__(self, seed, documents):
        self.rng = random.Random(seed)
        self.documents = documents
        self.state = {}  # _id -> document (the model of what MongoDB holds)
        self.ordinal = 0

    def _document(self, i, version):
        doc = {"_id": i, "name": f"doc {i} v{version}", "n": version,
               "address": {"city": f"city{version % 7}", "zip": f"{i:05d}"},
               "items": [{"sku": f"s{i}-{k}", "qty": version + k} for k in range(self.rng.randint(1, 3))],
               "pad": "x" * 300}
        if version % 3 == 0:
            doc["note"] = f"note {version}"
        return doc

    def next_event(self):
        """One scenario-format event (tests/scenarios/README.md), applied to the model."""
        self.ordinal += 1
        i = self.rng.randrange(self.documents)
        version = self.ordinal
        if i not in self.state:
            self.state[i] = self._document(i, version)
            return {"op": "insert", "collection": "crash", "document": json.dumps(self.state[i])}
        roll = self.rng.random()
        if roll < 0.5:
            self.state[i] = self._document(i, version)
            return {"op": "replace", "collection": "crash", "document": json.dumps(self.state[i])}
        if roll < 0.8:
            doc = self.state[i]
            doc["n"] = version
            doc["address"]["city"] = f"delta{version}"
            doc.pop("note", None)
            return {"op": "update", "collection": "crash", "key": json.dumps({"_id": i}),
                    "updated": json.dumps({"n": version, "address.city": f"delta{version}"}), "removed": ["note"]}
        del self.state[i]
        return {"op": "delete", "collection": "crash", "key": json.dumps({"_id": i})}

    def expected_rows(self):
        root = sorted((str(i), d["name"], str(d["n"]), d["address"]["city"], d["address"]["zip"], d.get("note"))
                      for i, d in self.state.items())
        items = sorted((str(i), str(k), it["sku"], str(it["qty"]))
                       for i, d in self.state.items() for k, it in enumerate(d["items"]))
        return root, items


def mysql_rows(conn, database):
    with conn.cursor() as cur:
        cur.execute(f"SELECT `_id`, name, n, address_city, address_zip, note FROM `{database}`.crash")
        root = sorted(tuple(None if v is None else str(v) for v in r) for r in cur.fetchall())
        cur.execute(f"SELECT `_id`, `_idx1`, sku, qty FROM `{database}`.crash_items")
        items = [tuple(str(v) for v in r) for r in cur.fetchall()]
    return root, sorted(items), len(items)


def workload_topic(topics, name, partitions):
    """A topic of its own for a Workload's events (deleted after the test by the `topics` fixture)
    and a consumer group of its own: (prefix, topic, group)."""
    prefix = stack.unique(name)
    topic = make_topic(prefix, "crash", partitions)
    topics.append(topic)
    return prefix, topic, stack.unique("g")


def assert_model_state(conn, database, workload):
    """The tables equal the workload's model row for row, no child row twice, nothing quarantined."""
    want_root, want_items = workload.expected_rows()
    root, items, item_count = mysql_rows(conn, database)
    assert root == want_root
    assert items == want_items and item_count == len(want_items)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0


def produce(topic, prefix, events, start_ordinal=1):
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True, "linger.ms": 20})
    for n, event in enumerate(events):
        t, key, value = scenarios.encode(event, prefix, start_ordinal + n)
        assert t == topic
        producer.produce(topic, key=key, value=value)
        if n % 1000 == 999:
            producer.poll(0)
    assert producer.flush(60) == 0


def make_topic(prefix, collection, partitions, db="test"):
    name = f"{prefix}.{db}.{collection}"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(60)
    return name


@pytest.fixture
def topics():
    """Deletes the topics a test made."""
    made = []
    yield made
    if made:
        admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        for f in admin.delete_topics(made).values():
            f.result(60)


def total(offsets):
    return sum(offsets.values())


# Fast restarts after kill -9: the restarted process takes over its predecessor's static membership
# instead of waiting for its session to time out.
def member(name):
    return ["--kafka", f"group.instance.id={name}", "--kafka", "session.timeout.ms=6000"]


# ---------------------------------------------------------------------------------------------


def test_capture_then_apply_end_to_end(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    prefix = stack.unique("e2e")
    capture = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix)
    apply = pipeline.start_apply(tmp_path, database, stack.unique("g"),
                                 pattern=f"{prefix}\\.{mongo_db.name}\\..*",
                                 extra=["--kafka", "topic.metadata.refresh.interval.ms=1000", "--max-batch-ms", "100"])
    try:
        pipeline.wait_for_checkpoint(prefix, capture)
        orders = mongo_db["orders"]
        orders.insert_many([{"_id": i, "customer": {"name": f"c{i}", "city": "Oslo"},
                             "items": [{"sku": f"a{i}", "qty": i}, {"sku": f"b{i}", "qty": 1}]} for i in range(1, 6)])
        orders.update_one({"_id": 2}, {"$set": {"customer.city": "Bergen"}, "$push": {"items": {"sku": "z", "qty": 9}}})
        orders.delete_one({"_id": 3})

        want_root = [("1", "c1", "Oslo"), ("2", "c2", "Bergen"), ("4", "c4", "Oslo"), ("5", "c5", "Oslo")]
        want_items = sorted([(str(i), "0", f"a{i}", str(i)) for i in (1, 2, 4, 5)] +
                            [(str(i), "1", f"b{i}", "1") for i in (1, 2, 4, 5)] + [("2", "2", "z", "9")])

        def applied():
            capture.assert_running()
            apply.assert_running()
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND "
                            "TABLE_NAME IN ('orders','orders_items')", (database,))
                if cur.fetchone()[0] < 2:
                    return False
                cur.execute("SELECT `_id`, customer_name, customer_city FROM orders")
                root = sorted(tuple(str(v) for v in r) for r in cur.fetchall())
                cur.execute("SELECT `_id`, `_idx1`, sku, qty FROM orders_items")
                items = sorted(tuple(str(v) for v in r) for r in cur.fetchall())
            return root == want_root and items == want_items

        stack.wait_for(applied, timeout=120, what="MongoDB's changes in MySQL")
    finally:
        apply.stop()
        capture.stop()


def test_kill_9_twenty_times_while_events_flow(mysql_db, topics, tmp_path):
    """100,000 events over 4 partitions, produced straight into Kafka while apply runs; apply is
    killed with SIGKILL 20 times, spread over the whole stream: each run is killed at a random
    moment after it has passed the next twenty-first of the events. The final tables equal the
    model row for row, child rows included."""
    database, conn = mysql_db
    events_total = 100000
    workload = Workload(seed=20240601, documents=4000)
    events = [workload.next_event() for _ in range(events_total)]
    prefix, topic, group = workload_topic(topics, "crash", 4)

    def flow():  # as fast as the events can be encoded: the first crashes happen while they arrive
        for k in range(0, events_total, 2000):
            produce(topic, prefix, events[k:k + 2000], k + 1)

    producer = threading.Thread(target=flow)
    producer.start()
    rng = random.Random(7)
    try:
        for kill in range(20):
            proc = pipeline.start_apply(tmp_path, database, group, topics=[topic], name=f"crash{kill}",
                                        extra=member("crash") + ["--max-batch-events", "1000"])
            milestone = (kill + 1) * events_total // 21

            def passed_milestone():
                proc.assert_running()
                return total(pipeline.applied_offsets(conn, database, group)) >= milestone

            stack.wait_for(passed_milestone, timeout=120, what=f"apply to pass event {milestone}")
            time.sleep(rng.uniform(0, 0.5))  # the crash lands at a random point of the next batches
            proc.kill()
    finally:
        producer.join()
    pipeline.run_apply(database, group, topics=[topic], extra=member("crash"))

    assert total(pipeline.applied_offsets(conn, database, group)) == events_total
    assert_model_state(conn, database, workload)


def test_two_members_share_partitions_then_one_is_killed(mysql_db, topics, tmp_path):
    database, conn = mysql_db
    workload = Workload(seed=99, documents=300)
    events = [workload.next_event() for _ in range(6000)]
    prefix, topic, group = workload_topic(topics, "pair", 4)
    produce(topic, prefix, events[:3000])
    first = pipeline.start_apply(tmp_path, database, group, topics=[topic], name="a",
                                 extra=member("a") + ["--max-batch-events", "200"])
    second = pipeline.start_apply(tmp_path, database, group, topics=[topic], name="b",
                                  extra=member("b") + ["--max-batch-events", "200"])
    try:
        def both_own_partitions():
            first.assert_running()
            second.assert_running()
            return all("assigned " in p.log() and "no partitions" not in p.log().split("assigned ")[-1].split("\n")[0]
                       for p in (first, second))

        stack.wait_for(both_own_partitions, timeout=120, what="both members to own partitions")
        stack.wait_for(lambda: total(pipeline.applied_offsets(conn, database, group)) >= 3000, timeout=120,
                       what="the first half applied by the two members")
        produce(topic, prefix, events[3000:], 3001)
        first.kill()
        stack.wait_for(lambda: second.assert_running() or
                       total(pipeline.applied_offsets(conn, database, group)) == len(events),
                       timeout=180, what="the survivor to apply the rest")
    finally:
        second.stop()
    assert_model_state(conn, database, workload)


def test_bad_events_are_quarantined_and_the_rest_applied(mysql_db, topics):
    database, conn = mysql_db
    prefix = stack.unique("q")
    topic = make_topic(prefix, "crash", 1)
    topics.append(topic)
    good = lambda i: scenarios.encode({"op": "insert", "collection": "crash",  # noqa: E731
                                       "document": json.dumps({"_id": i, "name": f"n{i}"})}, prefix, i)
    long_key = scenarios.encode({"op": "insert", "collection": "crash",
                                 "document": json.dumps({"_id": "k" * 2000, "name": "too long"})}, prefix, 3)
    too_wide = scenarios.encode({"op": "insert", "collection": "crash",
                                 "document": json.dumps({"_id": 5, **{f"f{k}": k for k in range(1100)}})}, prefix, 5)
    messages = [good(1)[1:], (b'{"id": 2}', b"not json{"), long_key[1:], good(4)[1:], too_wide[1:], good(6)[1:]]
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0

    pipeline.run_apply(database, stack.unique("g"), topics=[topic])

    with conn.cursor() as cur:
        # A 2,000-byte _id is valid: it lands, its key cut and hashed, the whole _id in _id_full (the
        # key column widened from BIGINT to the key text, docs/mapping.md "Key columns").
        cur.execute("SELECT name, _id_full FROM crash ORDER BY `_id`")
        assert [tuple(r) for r in cur.fetchall()] == [("n1", None), ("n4", None), (None, None), ("n6", None),
                                                      ("too long", "k" * 2000)]
        # A document wider than a table may be is valid: it lands, the fields past the budget in _overflow.
        cur.execute("SELECT f1, JSON_EXTRACT(_overflow, '$.f1099') FROM crash WHERE `_id` = 5")
        assert cur.fetchone() == (1, "1099")
        cur.execute("SELECT topic, `partition`, `offset`, raw_event, error FROM _m2m_quarantine ORDER BY `offset`")
        rows = cur.fetchall()
    assert [(bytes(t).decode(), p, o) for t, p, o, _, _ in rows] == [(topic, 0, 1)]
    assert bytes(rows[0][3]) == b"not json{" and "decode" in rows[0][4]


def test_batches_written_in_the_background_while_the_next_fills_keep_every_guarantee(mysql_db, topics):
    """Pipelining (docs/apply.md): small batches, each written while the next fills, with a new column
    every few batches (the next batch is mapped against DDL not yet run) and events MySQL refuses (a
    CHECK constraint) in the middle: each refused event is quarantined alone, the batch built behind
    it is taken apart and added again, and every other event lands exactly once."""
    database, conn = mysql_db
    prefix = stack.unique("pl")
    topic = make_topic(prefix, "pipe", 2)
    topics.append(topic)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    ordinal = 0

    def send(ids):
        nonlocal ordinal
        for i in ids:
            ordinal += 1
            _, key, value = scenarios.encode({"op": "insert", "collection": "pipe", "document": json.dumps(
                {"_id": i, "n": i, f"f{i // 300}": f"v{i}"})}, prefix, ordinal)
            producer.produce(topic, key=key, value=value, partition=i % 2)
        assert producer.flush(60) == 0

    group = stack.unique("g")
    send(range(10))
    pipeline.run_apply(database, group, topics=[topic])
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE pipe ADD CONSTRAINT no_499 CHECK (MOD(n, 500) <> 499)")
    total = 3000
    send(range(10, total))
    pipeline.run_apply(database, group, topics=[topic], extra=["--max-batch-events", "40"])

    refused = [i for i in range(total) if i % 500 == 499]
    with conn.cursor() as cur:
        cur.execute("SELECT `_id`, n FROM pipe ORDER BY `_id`")
        assert cur.fetchall() == tuple((i, i) for i in range(total) if i not in refused)
        cur.execute(f"SELECT {', '.join(f'COUNT(f{k})' for k in range(total // 300))} FROM pipe")
        assert cur.fetchone() == tuple(300 - sum(1 for i in refused if i // 300 == k) for k in range(total // 300))
        cur.execute("SELECT `partition`, `offset`, error FROM _m2m_quarantine")
        quarantined = cur.fetchall()
    # Document i went to partition i % 2 at offset i // 2.
    assert sorted((p, o) for p, o, _ in quarantined) == sorted((i % 2, i // 2) for i in refused)
    assert all("no_499" in error for _, _, error in quarantined), quarantined
    assert pipeline.applied_offsets(conn, database, group) == {(topic, 0): total // 2, (topic, 1): total // 2}


def test_debezium_events_are_applied(mysql_db, topics):
    database, conn = mysql_db
    topic = stack.unique("dbz") + ".inventory.customers"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    topics.append(topic)
    oid = '{"$oid": "64f1d7f0a4f4d7a37f6c3a75"}'

    def source(ord_):
        return {"version": "2.4.0.Final", "connector": "mongodb", "name": "dbserver1", "ts_ms": 1693571061000,
                "snapshot": "false", "db": "inventory", "sequence": None, "rs": "rs0", "collection": "customers",
                "ord": ord_, "lsid": None, "txnNumber": None, "wallTime": 1693571061000}

    def value(op, after=None, update=None, ord_=1):
        return json.dumps({"before": None, "after": after, "patch": None, "filter": None, "updateDescription": update,
                           "source": source(ord_), "op": op, "ts_ms": 1693571061250, "transaction": None}).encode()

    alice = json.dumps({"id": oid}).encode()
    bob = json.dumps({"id": "1234"}).encode()
    carol = json.dumps({"schema": {"type": "struct"}, "payload": {"id": '"carol"'}}).encode()
    messages = [
        (alice, value("c", '{"_id": ' + oid + ', "name": "Alice", "visits": 3, "address": {"city": "Oslo"}}')),
        (bob, value("r", '{"_id": 1234, "name": "Bob", "visits": 1}', ord_=2)),
        (alice, value("u", None, {"removedFields": ["address"], "updatedFields": '{"visits": 4}',
                                  "truncatedArrays": None}, ord_=3)),
        (bob, value("d", ord_=4)),
        (bob, None),  # Debezium's tombstone after a delete
        (carol, json.dumps({"schema": {"type": "struct"},
                            "payload": json.loads(value("c", '{"_id": "carol", "name": "Carol", "visits": 7}',
                                                        ord_=5))}).encode()),
    ]
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for key, val in messages:
        producer.produce(topic, key=key, value=val)
    assert producer.flush(60) == 0

    pipeline.run_apply(database, stack.unique("g"), topics=[topic])

    with conn.cursor() as cur:
        cur.execute("SELECT `_id`, name, visits, address_city FROM customers")
        rows = sorted(tuple(None if v is None else (bytes(v).decode() if isinstance(v, (bytes, bytearray)) else str(v))
                            for v in r) for r in cur.fetchall())
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0
    assert rows == [("64f1d7f0a4f4d7a37f6c3a75", "Alice", "4", None), ("carol", "Carol", "7", None)]


# ---------------------------------------------------------------------------------------------
# Faults of MySQL in the middle of a batch: the test holds a lock on a row the batch writes, so the
# batch's transaction is open and waiting when the fault strikes; apply must redo the batch by itself.


def event_id(event):
    """The _id a Workload event writes."""
    return json.loads(event.get("key") or event["document"])["_id"]


def blocked_session(cur, database):
    """The id of a session using `database` whose transaction waits for a lock, or None."""
    cur.execute("SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t JOIN "
                "information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s", (database,))
    row = cur.fetchone()
    return row and row[0]


def test_a_steady_trickle_is_applied_as_it_comes_not_when_the_batch_window_ends(mysql_db, topics, tmp_path):
    """With a 10-minute batch window and no event limit in reach, only the consumer running dry
    between two events can close a batch: rows must land while events still trickle in."""
    database, conn = mysql_db
    workload = Workload(seed=11, documents=50)
    prefix, topic, group = workload_topic(topics, "trickle", 1)
    apply = pipeline.start_apply(tmp_path, database, group, topics=[topic],
                                 extra=["--max-batch-ms", "600000", "--max-batch-events", "100000"])
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    sent = 0

    def one_more_then_look():
        nonlocal sent
        apply.assert_running()
        sent += 1
        _, key, value = scenarios.encode(workload.next_event(), prefix, sent)
        producer.produce(topic, key=key, value=value)
        assert producer.flush(30) == 0
        return total(pipeline.applied_offsets(conn, database, group))

    try:
        applied = stack.wait_for(one_more_then_look, timeout=180, interval=0.1, what="a row while events trickle in")
    finally:
        assert apply.stop() == 0, apply.log()[-3000:]
    assert 0 < applied <= sent


@pytest.mark.parametrize("fault", ["kill_connection", "deadlock"])
def test_mysql_fault_mid_batch_is_retried(mysql_db, topics, tmp_path, fault):
    """kill_connection: KILL CONNECTION of apply's session while its batch waits inside the
    transaction. deadlock: the test's transaction, heavier than apply's (so InnoDB picks apply as the
    victim), closes a lock cycle with it: error 1213. Either way the same apply process reconnects,
    redoes the batch from the stored offsets, and the tables equal the model."""
    import pymysql

    database, conn = mysql_db
    workload = Workload(seed=5, documents=200)
    first = [workload.next_event() for _ in range(2000)]
    prefix, topic, group = workload_topic(topics, "fault", 1)
    produce(topic, prefix, first)
    apply = pipeline.start_apply(tmp_path, database, group, topics=[topic], extra=["--max-batch-ms", "100"])
    blocker = pymysql.connect(**stack.MYSQL, database=database, autocommit=False)
    try:
        stack.wait_for(lambda: apply.assert_running() or total(pipeline.applied_offsets(conn, database, group)) == 2000,
                       timeout=180, what="the first events applied")
        second = [workload.next_event() for _ in range(300)]
        # A document the second part writes, whose row exists now.
        existing = {int(r[0]) for r in mysql_rows(conn, database)[0]}
        victim = next(event_id(e) for e in second if event_id(e) in existing)
        with blocker.cursor() as cur:
            cur.execute("CREATE TABLE _weight (n BIGINT PRIMARY KEY)")
            cur.execute("BEGIN")
            if fault == "deadlock":  # InnoDB rolls back the transaction that changed fewer rows
                cur.execute("INSERT INTO _weight SELECT seq FROM seq_1_to_50000")
            cur.execute("SELECT `_id` FROM crash WHERE `_id` = %s FOR UPDATE", (victim,))
        produce(topic, prefix, second, 2001)
        with conn.cursor() as cur:
            apply_session = stack.wait_for(lambda: apply.assert_running() or blocked_session(cur, database),
                                          timeout=120, what="apply's batch to wait for the row lock")
        with blocker.cursor() as cur:
            if fault == "kill_connection":
                with conn.cursor() as killer:
                    killer.execute(f"KILL CONNECTION {int(apply_session)}")
            else:
                # Closes the cycle: apply holds its offset row and waits for ours.
                cur.execute("SELECT next_offset FROM _m2m_offsets WHERE group_id = %s FOR UPDATE", (group,))
            blocker.rollback()
        stack.wait_for(lambda: apply.assert_running() or total(pipeline.applied_offsets(conn, database, group)) == 2300,
                       timeout=180, what="the rest applied after the fault")
        apply.assert_running()
    finally:
        blocker.close()
        apply.stop()
    log = apply.log()
    assert "redoing from the stored offsets" in log, log[-3000:]
    # 1213 deadlock; a killed session: 1927 (MariaDB) or, once the server closed it, 2013/2006.
    errors = ["1213"] if fault == "deadlock" else ["1927", "2013", "2006"]
    assert any(f"(errno {e})" in log for e in errors), log[-3000:]
    assert_model_state(conn, database, workload)


@pytest.mark.parametrize("batch", [None, 1], ids=["batched", "one_per_batch"])
def test_updates_that_need_the_document_fetch_it_from_mongodb(mongo_db, mysql_db, topics, batch):
    """Deltas into an array mapped to a child table cannot be applied column by column: apply fetches
    the document from MongoDB (the stand-in) and rewrites the row and its child rows. A document
    deleted meanwhile (the lookup finds nothing) is deleted, not resurrected, and nothing else is
    touched."""
    database, conn = mysql_db
    prefix = stack.unique("lookup")
    topic = make_topic(prefix, "orders", 1, db=mongo_db.name)
    topics.append(topic)
    mongo_db["orders"].insert_many([
        {"_id": 1, "name": "a", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 7}, {"sku": "e", "qty": 5}]},
        {"_id": 3, "name": "c", "items": [{"sku": "d", "qty": 4}]},
    ])  # documents 2 and 4 are gone from MongoDB

    def event(op, **fields):
        return {"op": op, "db": mongo_db.name, "collection": "orders", **fields}

    events = [
        event("insert", document='{"_id": 1, "name": "a", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}'),
        event("insert", document='{"_id": 2, "name": "b", "items": [{"sku": "c", "qty": 1}]}'),
        event("insert", document='{"_id": 3, "name": "c", "items": [{"sku": "d", "qty": 4}]}'),
        event("insert", document='{"_id": 4, "name": "d", "items": [{"sku": "f", "qty": 1}]}'),
        event("update", key='{"_id": 1}', updated='{"items.1.qty": 7}'),
        event("update", key='{"_id": 2}', updated='{"items.0.qty": 9}'),  # its delete follows
        event("update", key='{"_id": 1}', updated='{"items.2": {"sku": "e", "qty": 5}}'),  # a $push
        event("update", key='{"_id": 4}', updated='{"items.0.qty": 3}'),  # deleted, no delete event yet
        event("delete", key='{"_id": 2}'),
    ]
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for n, e in enumerate(events, 1):
        t, key, value = scenarios.encode(e, prefix, n)
        assert t == topic
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0

    pipeline.run_apply(database, stack.unique("g"), topics=[topic],
                       extra=["--mongo-uri", stack.MONGO_URI] + (["--max-batch-events", str(batch)] if batch else []))

    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT `_id`, name FROM orders")
        assert sorted(tuple(str(v) for v in r) for r in cur.fetchall()) == [("1", "a"), ("3", "c")]
        cur.execute("SELECT `_id`, `_idx1`, sku, qty FROM orders_items")
        items = [tuple(str(v) for v in r) for r in cur.fetchall()]
    assert sorted(items) == [("1", "0", "a", "1"), ("1", "1", "b", "7"), ("1", "2", "e", "5"), ("3", "0", "d", "4")]


def test_updates_whose_document_mongodb_found_gone_delete_it_without_a_lookup(mysql_db, topics):
    """Capture marks an update whose updateLookup found no document (m2m.document_gone): it was
    deleted after the update, and its delete follows. Apply without --mongo-uri then does what the
    lookup would: the row and its child rows go, nothing is quarantined. The same delta without the
    mark still needs the document and is quarantined, naming it."""
    database, conn = mysql_db
    prefix = stack.unique("gone")
    topic = make_topic(prefix, "orders", 1)
    topics.append(topic)

    def event(op, **fields):
        return {"op": op, "collection": "orders", **fields}

    events = [
        event("insert", document='{"_id": 1, "name": "a", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}'),
        event("insert", document='{"_id": 2, "name": "b", "items": [{"sku": "c", "qty": 1}]}'),
        event("insert", document='{"_id": 3, "name": "c", "items": [{"sku": "d", "qty": 4}]}'),
        event("update", key='{"_id": 1}', updated='{"items.1.qty": 7}', document_gone=True),  # its delete follows
        event("update", key='{"_id": 2}', updated='{"items.0.qty": 9}', document_gone=True),  # delete not yet read
        event("update", key='{"_id": 3}', updated='{"name": "c2"}', document_gone=True),  # column-wise: applied
        event("update", key='{"_id": 3}', updated='{"items.0.qty": 5}'),  # no mark: needs the document
        event("delete", key='{"_id": 1}'),
    ]
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for n, e in enumerate(events, 1):
        t, key, value = scenarios.encode(e, prefix, n)
        assert t == topic
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0

    pipeline.run_apply(database, stack.unique("g"), topics=[topic])

    with conn.cursor() as cur:
        cur.execute("SELECT `offset`, error FROM _m2m_quarantine")
        quarantined = cur.fetchall()
        cur.execute("SELECT `_id`, name FROM orders")
        rows = sorted(tuple(str(v) for v in r) for r in cur.fetchall())
        cur.execute("SELECT `_id`, `_idx1`, sku, qty FROM orders_items")
        items = sorted(tuple(str(v) for v in r) for r in cur.fetchall())
    assert [o for o, _ in quarantined] == [6], quarantined
    assert "has no --mongo-uri" in quarantined[0][1] and "orders _id=3" in quarantined[0][1], quarantined
    assert rows == [("3", "c2")]
    assert items == [("3", "0", "d", "4")]


@pytest.mark.parametrize("batch", [None, 1], ids=["batched", "one_per_batch"])
def test_rename_on_a_multi_partition_topic_then_writes_to_the_new_name(mysql_db, topics, batch):
    """old's topic has 3 partitions; the rename is copied to each, as capture does, and the writes to
    the new name follow on fresh's topic. Every event of old before the rename lands in the renamed
    tables, and every write to fresh after it finds them (docs/apply.md, "Order across topics")."""
    database, conn = mysql_db
    prefix = stack.unique("ren")
    old, fresh = make_topic(prefix, "old", 3), make_topic(prefix, "fresh", 1)
    topics.extend([old, fresh])
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    ordinal = 0

    def send(event, partitions=(None,)):
        nonlocal ordinal
        ordinal += 1
        topic, key, value = scenarios.encode(event, prefix, ordinal)
        for p in partitions:
            producer.produce(topic, key=key, value=value, **({} if p is None else {"partition": p}))

    for i in range(1, 31):
        send({"op": "insert", "collection": "old", "document": json.dumps({"_id": i, "items": [{"a": i}]})})
    send({"op": "rename", "collection": "old", "to": "fresh"}, partitions=(0, 1, 2))
    for i in range(31, 41):
        send({"op": "insert", "collection": "fresh", "document": json.dumps({"_id": i, "items": [{"a": i}]})})
    for i in range(1, 11):
        send({"op": "update", "collection": "fresh", "key": json.dumps({"_id": i}), "updated": json.dumps({"n": i})})
    assert producer.flush(60) == 0

    pipeline.run_apply(database, stack.unique("g"), topics=[old, fresh],
                       extra=["--max-batch-events", str(batch)] if batch else [])

    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME NOT LIKE '\\_m2m%%'", (database,))
        assert sorted(r[0] for r in cur.fetchall()) == ["fresh", "fresh_items"]
        cur.execute("SELECT `_id`, n FROM fresh")
        assert sorted(cur.fetchall()) == [(i, i if i <= 10 else None) for i in range(1, 41)]
        cur.execute("SELECT `_id`, a FROM fresh_items")
        assert sorted(cur.fetchall()) == [(i, i) for i in range(1, 41)]
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("kill_parked", [False, True], ids=["members_stay", "parked_member_killed"])
def test_a_drop_copied_to_two_members_runs_once_both_reached_it(mysql_db, topics, tmp_path, kill_parked):
    """--on-drop drop on a topic of 2 partitions shared by two members of one group. The drop is copied
    to both partitions (with m2m.copies, as capture writes it) and a new collection of the same name is
    written after it. Partition 1's events arrive late, as if its member lagged: its old documents must
    land before the drop (never in the new collection's tables), and its copy must not drop the new
    tables partition 0 may have filled meanwhile (docs/apply.md, "Collection events"). With
    kill_parked, the member waiting at its copy is killed and the other takes its partition over."""
    database, conn = mysql_db
    prefix = stack.unique("redrop")
    topic = make_topic(prefix, "c", 2)
    topics.append(topic)
    group = stack.unique("g")
    plan = {0: [], 1: []}  # per partition, in MongoDB's order: (event, ordinal)
    ordinal = 0

    def add(event, partitions):
        nonlocal ordinal
        ordinal += 1
        for p in partitions:
            plan[p].append((event, ordinal))

    def document(i, gen):
        return {"op": "insert", "collection": "c", "document": json.dumps({"_id": i, "gen": gen, "items": [{"a": i}]})}

    for i in range(1, 11):
        add(document(i, "old"), [i % 2])
    add({"op": "drop", "collection": "c"}, [0, 1])
    for i in range(5, 15):
        add(document(i, "new"), [i % 2])
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})

    def produce_partition(p):
        for event, n in plan[p]:
            _, key, value = scenarios.encode(event, prefix, n)
            if event["op"] == "drop":
                value = json.loads(value)
                value["m2m"]["copies"] = 2
                value = json.dumps(value).encode()
            producer.produce(topic, key=key, value=value, partition=p)
        assert producer.flush(60) == 0

    extra = ["--on-drop", "drop", "--max-batch-ms", "100"]
    members = {name: pipeline.start_apply(tmp_path, database, group, topics=[topic], name=name,
                                          extra=member(name) + extra) for name in ("a", "b")}
    copy_offset, end = len(plan[0]) - 6, len(plan[0])  # partition 0: 5 old, the drop, 5 new
    try:
        def both_own_a_partition():
            for p in members.values():
                p.assert_running()
            return all(f"{topic}[" in p.log() for p in members.values())

        stack.wait_for(both_own_a_partition, timeout=120, what="both members to own a partition")
        produce_partition(0)

        def partition_0_at_its_copy_or_past_it():
            for p in members.values():
                p.assert_running()
            at = pipeline.applied_offsets(conn, database, group).get((topic, 0))
            return at == end or (at == copy_offset and any("waits until" in p.log() for p in members.values()))

        stack.wait_for(partition_0_at_its_copy_or_past_it, timeout=120, what="partition 0 to reach the drop")
        if kill_parked:
            def last_assignment(p):
                return [line for line in p.log().splitlines() if "assigned " in line][-1]

            owner = next(name for name, p in members.items() if f"{topic}[0]@" in last_assignment(p))
            members.pop(owner).kill()
        produce_partition(1)
        stack.wait_for(lambda: all(p.assert_running() is None for p in members.values()) and
                       pipeline.applied_offsets(conn, database, group) == {(topic, 0): end, (topic, 1): end},
                       timeout=180, what="both partitions applied")
    finally:
        for p in members.values():
            p.stop()
    with conn.cursor() as cur:
        cur.execute("SELECT `_id`, gen FROM c")
        assert sorted(cur.fetchall()) == [(i, "new") for i in range(5, 15)]
        cur.execute("SELECT `_id`, a FROM c_items")
        assert sorted(cur.fetchall()) == [(i, i) for i in range(5, 15)]
        cur.execute("SELECT `partition`, `offset`, event, copies, executed_at IS NOT NULL FROM _m2m_collection_events "
                    "WHERE group_id = %s ORDER BY `partition`", (group,))
        copies = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0
    assert [c[:4] for c in copies] == [(0, copy_offset, "drop", 2), (1, copy_offset, "drop", 2)]
    assert sum(c[4] for c in copies) == 1  # run once
