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


def produce(topic, prefix, events, start_ordinal=1):
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True, "linger.ms": 20})
    for n, event in enumerate(events):
        t, key, value = scenarios.encode(event, prefix, start_ordinal + n)
        assert t == topic
        producer.produce(topic, key=key, value=value)
        if n % 1000 == 999:
            producer.poll(0)
    assert producer.flush(60) == 0


def make_topic(prefix, collection, partitions):
    name = f"{prefix}.test.{collection}"
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
    """20,000 events over 4 partitions; apply is killed with SIGKILL 20 times at random moments while
    they are produced. The final tables equal the model row for row, child rows included."""
    database, conn = mysql_db
    events_total = 20000
    workload = Workload(seed=20240601, documents=800)
    events = [workload.next_event() for _ in range(events_total)]
    prefix = stack.unique("crash")
    topic = make_topic(prefix, "crash", 4)
    topics.append(topic)
    group = stack.unique("g")

    def flow():  # about 2,000 events/s: the crashes happen while events keep arriving
        for k in range(0, events_total, 1000):
            produce(topic, prefix, events[k:k + 1000], k + 1)
            time.sleep(0.5)

    producer = threading.Thread(target=flow)
    producer.start()
    rng = random.Random(7)
    kills = 0
    try:
        while kills < 20:
            before = total(pipeline.applied_offsets(conn, database, group))
            proc = pipeline.start_apply(tmp_path, database, group, topics=[topic], name=f"crash{kills}",
                                        extra=member("crash") + ["--max-batch-events", "500"])

            def progressed():
                proc.assert_running()
                now = total(pipeline.applied_offsets(conn, database, group))
                return now > before or now >= pipeline.topic_end_offsets(topic) == events_total

            stack.wait_for(progressed, timeout=120, what="apply to commit a batch")
            time.sleep(rng.uniform(0, 0.8))  # the crash lands at a random point of the next batches
            proc.kill()
            kills += 1
    finally:
        producer.join()
    pipeline.run_apply(database, group, topics=[topic], extra=member("crash"))

    assert total(pipeline.applied_offsets(conn, database, group)) == events_total
    want_root, want_items = workload.expected_rows()
    root, items, item_count = mysql_rows(conn, database)
    assert root == want_root
    assert items == want_items and item_count == len(want_items)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
        assert cur.fetchone()[0] == 0


def test_two_members_share_partitions_then_one_is_killed(mysql_db, topics, tmp_path):
    database, conn = mysql_db
    workload = Workload(seed=99, documents=300)
    events = [workload.next_event() for _ in range(6000)]
    prefix = stack.unique("pair")
    topic = make_topic(prefix, "crash", 4)
    topics.append(topic)
    group = stack.unique("g")
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
    want_root, want_items = workload.expected_rows()
    root, items, item_count = mysql_rows(conn, database)
    assert root == want_root
    assert items == want_items and item_count == len(want_items)


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
        cur.execute("SELECT `_id`, name FROM crash ORDER BY `_id`")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "n1"), (4, "n4"), (6, "n6")]
        cur.execute("SELECT topic, `partition`, `offset`, raw_event, error FROM _m2m_quarantine ORDER BY `offset`")
        rows = cur.fetchall()
    assert [(bytes(t).decode(), p, o) for t, p, o, _, _ in rows] == [(topic, 0, 1), (topic, 0, 2), (topic, 0, 4)]
    assert bytes(rows[0][3]) == b"not json{" and "decode" in rows[0][4]
    assert "1024" in rows[1][4] or "too long" in rows[1][4], rows[1][4]
    assert "Too many columns" in rows[2][4], rows[2][4]


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
