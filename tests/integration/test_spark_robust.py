"""The Spark job on input and surroundings that used to stop it: statements MySQL refuses (the event
is quarantined, the rest applied), tables it did not create, a missing database, documents of odd
shapes, records lost in Kafka, documents near MongoDB's 16 MB limit. Where the native engine defines
the outcome, both engines run and their tables are compared."""
import base64
import hashlib
import json
import random

import pymysql
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import engines
import scenarios
import stack
from test_spark_conformance import checksums


class Stream:
    """Scenario-style events (tests/scenarios/README.md) produced, as capture writes them, to topics
    of the test's own, in rounds; the cluster times go on increasing from round to round."""

    def __init__(self, tmp_path, topic_config=None):
        self.prefix, self.tmp_path, self.sent = stack.unique("rb"), tmp_path, 0
        self.topics, self.topic_config = [], topic_config or {}
        self.admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        self.producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True,
                                  "message.max.bytes": 64 << 20})

    def send(self, events):
        """Produces the events; returns the (topic, partition, offset, value) of each. An event may
        also be (collection, value bytes): a record that is no event."""
        encoded = [(f"{self.prefix}.test.{e[0]}", None, e[1]) if isinstance(e, tuple)
                   else scenarios.encode(e, self.prefix, self.sent + i + 1) for i, e in enumerate(events)]
        self.sent += len(events)
        new = sorted({t for t, _, _ in encoded} - set(self.topics))
        if new:
            for f in self.admin.create_topics([NewTopic(t, 1, 1, config=self.topic_config) for t in new]).values():
                f.result(60)
            # A topic deleted and made again: the producer's metadata may still have the old one, whose
            # partition it then calls unknown; its own metadata request brings the new one in.
            for t in new:
                stack.wait_for(lambda: not (m := self.producer.list_topics(t, timeout=30).topics[t]).error
                               and m.partitions, what=f"the producer seeing {t}")
        self.topics += new
        where = [None] * len(encoded)

        def delivered(i):
            return lambda err, m: where.__setitem__(
                i, err or (m.topic(), m.partition(), m.offset(), m.value().decode(errors="replace")))
        for i, (topic, key, value) in enumerate(encoded):
            self.producer.produce(topic, key=key, value=value, on_delivery=delivered(i))
        assert self.producer.flush(120) == 0
        assert all(isinstance(w, tuple) for w in where), [w for w in where if not isinstance(w, tuple)]
        return where

    def run(self, engine, database, name, extra=()):
        """Applies everything sent so far with `engine` (engines.native or engines.spark); `name`
        keeps the group / checkpoint of one engine's runs."""
        run = scenarios.ScenarioRun({}, self.prefix, sorted(self.topics), database, name, None, None,
                                    self.tmp_path / name)
        run.workdir.mkdir(exist_ok=True)
        return engine(run, extra) if extra else engine(run)


def query(database, sql, args=()):
    conn = pymysql.connect(**stack.MYSQL, database=database, conv={})
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return [tuple(v.decode() if isinstance(v, bytes) else v for v in r) for r in cur.fetchall()]
    finally:
        conn.close()


def execute(database, *statements):
    conn = pymysql.connect(**stack.MYSQL, database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def insert(collection, doc):
    return {"op": "insert", "collection": collection, "document": json.dumps(doc)}


@pytest.fixture
def native_db():
    with stack.own_mysql_database() as (name, _):
        yield name


# ---- MySQL refuses an event ----------------------------------------------------------------------

def test_spark_quarantines_the_events_mysql_refuses_and_applies_the_rest(mysql_db, native_db, tmp_path):
    """A CHECK constraint the user added refuses an insert and an update; a record that is no JSON
    cannot be decoded. Those events are quarantined with the cause and their raw value, and every
    other event of the same batch is applied; a document wider than a table may be lands (its
    fields past the budget in the overflow column). Both engines run the same core: the tables and
    the quarantines are the same. A replay of the batch (Spark lost its commit) changes nothing."""
    spark_db = mysql_db[0]
    stream = Stream(tmp_path)
    stream.send([insert("w", {"_id": 1, "qty": 1, "items": [{"sku": "a"}]}), insert("wide", {"_id": 1, "a": 1})])
    stream.run(engines.native, native_db, "native")
    stream.run(engines.spark, spark_db, "spark")
    for db in (native_db, spark_db):
        execute(db, "ALTER TABLE w ADD CONSTRAINT qty_not_negative CHECK (qty >= 0)")
    sent = stream.send([
        insert("w", {"_id": 2, "qty": 2, "items": [{"sku": "b"}]}),
        insert("w", {"_id": 3, "qty": -3, "items": [{"sku": "c"}]}),  # refused: the constraint
        insert("wide", {"_id": 2, "a": 2, **{f"f{i}": i for i in range(1100)}}),  # lands: _overflow
        {"op": "update", "collection": "w", "key": '{"_id": 1}', "updated": '{"qty": 10}'},
        insert("w", {"_id": 5, "qty": 5, "items": [{"sku": "e"}, {"sku": "f"}]}),
        {"op": "update", "collection": "w", "key": '{"_id": 2}', "updated": '{"qty": -1}'},  # refused
        insert("wide", {"_id": 3, "a": 3}),
        ("w", b"not an event"),
    ])
    stream.run(engines.native, native_db, "native")
    stream.run(engines.spark, spark_db, "spark")

    assert query(spark_db, "SELECT _id, qty FROM w ORDER BY _id") == [("1", "10"), ("2", "2"), ("5", "5")]
    assert query(spark_db, "SELECT _id, _idx1, sku FROM w_items ORDER BY _id, _idx1") == [
        ("1", "0", "a"), ("2", "0", "b"), ("5", "0", "e"), ("5", "1", "f")]
    assert [r[0] for r in query(spark_db, "SELECT _id FROM wide ORDER BY _id")] == ["1", "2", "3"]
    quarantine = query(spark_db, "SELECT topic, `partition`, `offset`, error, raw_event FROM _m2m_quarantine")
    refused = [sent[1], sent[5], sent[7]]
    assert sorted((t, int(p), int(o), v) for t, p, o, _, v in quarantine) == sorted(refused)
    errors = {(t, int(o)): e for t, _, o, e, _ in quarantine}
    constraint, update, no_event = (errors[(t, o)] for t, _, o, _ in refused)
    assert "qty_not_negative" in constraint, constraint
    assert "4025" in update or "CONSTRAINT" in update, update
    assert "cannot decode the event" in no_event, no_event
    assert checksums(spark_db) == checksums(native_db)
    native_quarantine = query(native_db, "SELECT topic, `offset`, error FROM _m2m_quarantine")
    assert sorted((t, int(o), e.replace(native_db, "<db>")) for t, o, e in native_quarantine) == sorted(
        (t, int(o), e.replace(spark_db, "<db>")) for t, _, o, e, _ in quarantine)

    # Spark replays a batch whose commit it did not record: MySQL's offsets say it is applied.
    commits = tmp_path / "spark" / "checkpoint" / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
    before = checksums(spark_db), query(spark_db, "SELECT topic, next_offset, applied_events FROM _m2m_offsets")
    stream.run(engines.spark, spark_db, "spark")
    assert (checksums(spark_db), query(spark_db, "SELECT topic, next_offset, applied_events FROM _m2m_offsets")) == before
    assert len(query(spark_db, "SELECT id FROM _m2m_quarantine")) == 3


# ---- Tables the job did not create; a database that does not exist -------------------------------

FOREIGN_TABLES = [
    "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20)) COMMENT 'kept by the shop application'",
    "CREATE TABLE audit (id INT PRIMARY KEY, what TEXT)",
    "CREATE TABLE settings (k VARCHAR(10) PRIMARY KEY, v TEXT) COMMENT '{\"owner\": \"ops\"}'",
    "CREATE TABLE numbers (n INT PRIMARY KEY) COMMENT '[1, 2]'",
    "INSERT INTO orders VALUES (1, 'not a document')",
    "INSERT INTO audit VALUES (7, 'kept')",
    "INSERT INTO settings VALUES ('mode', 'x')",
    "INSERT INTO numbers VALUES (3)",
]


def test_spark_leaves_tables_it_did_not_create_alone(mysql_db, native_db, tmp_path):
    """Tables whose comment is no mapping source (none, prose, other JSON) keep their rows and
    columns; the collections named like them get other tables, named as the native engine names
    them."""
    spark_db = mysql_db[0]
    for db in (native_db, spark_db):
        execute(db, *FOREIGN_TABLES)
    stream = Stream(tmp_path)
    stream.send([
        insert("orders", {"_id": 1, "total": 5, "items": [{"sku": "a"}]}),
        insert("audit", {"_id": 7, "who": "me"}),
        {"op": "update", "collection": "orders", "key": '{"_id": 1}', "updated": '{"total": 6}'},
    ])
    stream.run(engines.native, native_db, "native")
    stream.run(engines.spark, spark_db, "spark")

    assert query(spark_db, "SELECT * FROM orders") == [("1", "not a document")]
    assert query(spark_db, "SELECT * FROM audit") == [("7", "kept")]
    assert query(spark_db, "SELECT * FROM settings") == [("mode", "x")]
    assert query(spark_db, "SELECT * FROM numbers") == [("3",)]
    made = dict(query(spark_db, "SELECT TABLE_COMMENT, TABLE_NAME FROM information_schema.TABLES WHERE "
                                "TABLE_SCHEMA = %s AND TABLE_COMMENT LIKE '[\"%%'", (spark_db,)))
    assert set(made) == {'["orders"]', '["orders",["items"]]', '["audit"]'}
    orders = made['["orders"]']
    assert orders.startswith("orders_")
    assert query(spark_db, f"SELECT _id, total FROM `{orders}`") == [("1", "6")]
    assert query(spark_db, "SELECT COUNT(*) FROM _m2m_quarantine") == [("0",)]
    assert checksums(spark_db) == checksums(native_db)


# ---- Documents of odd shapes ---------------------------------------------------------------------

def _oid(rnd):
    return {"$oid": "".join(rnd.choice("0123456789abcdef") for _ in range(24))}


def sample_analytics_like(rnd):
    """Documents shaped as MongoDB's public sample_analytics data set: customers whose
    tier_and_details is keyed by random 32-hex ids (or empty), accounts with arrays of product
    names (or none), transactions with an array of sub-documents (or an empty one)."""
    hex32 = lambda: "".join(rnd.choice("0123456789abcdef") for _ in range(32))  # noqa: E731
    benefits = ["24 hour dedicated line", "concierge services", "airline lounge access", "car rental insurance"]
    products = ["Brokerage", "InvestmentStock", "Commodity", "CurrencyService", "Derivatives", "InvestmentFund"]
    events = []
    for i in range(6):
        tiers = {}
        for _ in range(i % 3):  # the first customer has none: {}
            key = hex32()
            tiers[key] = {"tier": rnd.choice(["Bronze", "Silver", "Gold", "Platinum"]),
                          "benefits": rnd.sample(benefits, rnd.randrange(3)), "active": rnd.random() < 0.5, "id": key}
        events.append(insert("customers", {
            "_id": _oid(rnd), "username": f"user{i}", "name": f"Name {i}",
            "accounts": rnd.sample(range(10 ** 6), i % 3),
            "birthdate": {"$date": {"$numberLong": str(rnd.randrange(10 ** 12))}}, "tier_and_details": tiers}))
        events.append(insert("accounts", {"_id": _oid(rnd), "account_id": 100000 + i, "limit": 10000,
                                          "products": rnd.sample(products, i % 4)}))
        events.append(insert("transactions", {
            "_id": _oid(rnd), "account_id": 100000 + i, "transaction_count": i % 3,
            "bucket_start_date": {"$date": "1969-02-04T00:00:00Z"},
            "transactions": [{"date": {"$date": "2003-09-09T00:00:00Z"}, "amount": rnd.randrange(10000),
                              "transaction_code": rnd.choice(["buy", "sell"]), "symbol": "amzn",
                              "price": "43.07", "total": str(rnd.randrange(10 ** 6))} for _ in range(i % 3)]}))
    return events


EDGE_DOCUMENTS = [
    {"_id": 1, "a": [], "b": {}, "c": [[]], "d": [{}], "e": [{}, {}], "f": {"g": [], "h": {}}, "": "empty key",
     "k": {"": {"": 1}}},
    {"_id": 2, "n": [None], "m": [1, None, 2], "o": [{"x": 1}, None, {"x": None}], "p": [[1, 2], [3]],
     "q": [[{"r": 1}]], "s": [{"t": []}, {"t": [{}]}, {"t": [{"u": [[]]}]}]},
    {"_id": 3, "a": [{"b": [{"c": [{}]}]}], "deep": {"x": {"y": {"z": {"w": {}}}}}, "z": {"": []},
     "e": [{"": [None, {}]}]},
]


def test_spark_maps_empty_and_nested_shapes_into_a_database_it_creates(native_db, tmp_path):
    """Empty arrays and sub-documents at every level, arrays of empty documents, nulls in arrays,
    arrays of arrays, empty keys, maps keyed by ids: the Spark job maps them as the native engine
    does. Its database does not exist beforehand: the job creates it, as `mongo2mysql apply` does."""
    stream = Stream(tmp_path)
    stream.send(sample_analytics_like(random.Random(5)) + [insert("edge", d) for d in EDGE_DOCUMENTS]
                + [{"op": "replace", "collection": "edge",
                    "document": json.dumps({"_id": 1, "a": [{}], "b": {"c": {}}})}])
    stream.run(engines.native, native_db, "native")
    spark_db = stack.unique("t")
    try:
        stream.run(engines.spark, spark_db, "spark")
        assert query(spark_db, "SELECT COUNT(*) FROM _m2m_quarantine") == [("0",)]
        spark, native = checksums(spark_db), checksums(native_db)
        assert {"accounts", "customers", "transactions", "transactions_transactions", "edge", "edge_d",
                "edge_e"} <= set(spark)
        assert spark == native
        assert query(spark_db, "SELECT products FROM accounts ORDER BY account_id LIMIT 1") == [("[]",)]
        assert query(spark_db, "SELECT COUNT(*) FROM transactions_transactions") == [("6",)]
        assert query(spark_db, "SELECT m FROM edge WHERE _id = 2") == [("[1,null,2]",)]
        customers = {}
        for row in query(spark_db, "SELECT * FROM customers"):
            values = [v for v in row if v is not None]
            customers[next(v for v in values if v.startswith("user"))] = " ".join(values)
        sent = {json.loads(e["document"])["username"]: json.loads(e["document"])
                for e in sample_analytics_like(random.Random(5)) if e["collection"] == "customers"}
        assert sorted(customers) == sorted(sent)
        for user, doc in sent.items():  # every tier and benefit is in the row, as a column or as JSON
            for key, tier in doc["tier_and_details"].items():
                assert key in customers[user] and tier["tier"] in customers[user]
                assert all(b in customers[user] for b in tier["benefits"])
    finally:
        execute(native_db, f"DROP DATABASE IF EXISTS `{spark_db}`")


# ---- Records lost in Kafka ----------------------------------------------------------------------

def test_spark_stops_on_records_lost_in_kafka_unless_allowed(mysql_db, tmp_path):
    """Records deleted from the topic before the job read them stop it with an error naming the
    topic, partition and offsets and the way out; with --accept-lost-events it skips them. A topic
    deleted and made again stops it too."""
    from m2m_spark.lost import KafkaDataLost

    database = mysql_db[0]
    stream = Stream(tmp_path)
    stream.send([insert("w", {"_id": i}) for i in range(10)])
    stream.run(engines.spark, database, "spark")
    sent = stream.send([insert("w", {"_id": i}) for i in range(10, 20)])
    topic = sent[0][0]
    assert [o for _, _, o, _ in sent] == list(range(10, 20))
    deleted = stream.admin.delete_records([TopicPartition(topic, 0, 15)])
    for f in deleted.values():
        f.result(60)

    with pytest.raises(KafkaDataLost) as lost:
        stream.run(engines.spark, database, "spark")
    message = str(lost.value)
    assert f"topic {topic} partition 0: offsets 10 to 15" in message, message
    assert "--accept-lost-events" in message and "docs/spark.md" in message, message
    assert query(database, "SELECT COUNT(*) FROM w") == [("10",)]

    stream.run(engines.spark, database, "spark", extra=["--accept-lost-events"])
    applied = [int(i) for (i,) in query(database, "SELECT _id FROM w ORDER BY _id")]
    assert applied == list(range(10)) + list(range(15, 20))

    stream.admin.delete_topics([topic])[topic].result(60)
    stream.topics.remove(topic)
    stack.wait_for(lambda: topic not in stream.admin.list_topics(timeout=30).topics, what="the topic deleted")
    stream.send([insert("w", {"_id": i}) for i in range(100, 103)])
    with pytest.raises(KafkaDataLost) as lost:
        stream.run(engines.spark, database, "spark")
    message = str(lost.value)
    assert f"topic {topic} partition 0: the job had read up to offset 20, the partition now ends at 3" in message
    assert len(query(database, "SELECT _id FROM w")) == 15


# ---- Documents near 16 MB ------------------------------------------------------------------------

def test_spark_writes_a_document_near_mongodbs_size_limit(mysql_db, tmp_path):
    """A 15 MiB document (10 MiB of binary, 5 MiB of text) makes a 28 MiB INSERT (binary in hex,
    quotes and backslashes escaped), over pymysql's default client limit of 16 MiB."""
    database = mysql_db[0]
    blob = random.Random(3).randbytes(10 << 20)
    text = "é\\'\"" * (1 << 20)  # 5 MiB in UTF-8, 8 MiB as an SQL literal
    stream = Stream(tmp_path, topic_config={"max.message.bytes": str(64 << 20)})
    stream.send([
        insert("big", {"_id": 1, "blob": {"$binary": {"base64": base64.b64encode(blob).decode(), "subType": "00"}},
                       "text": text}),
        insert("big", {"_id": 2, "small": True}),
    ])
    stream.run(engines.spark, database, "spark")
    assert query(database, "SELECT LEFT(error, 300) FROM _m2m_quarantine") == []
    rows = query(database, "SELECT _id, MD5(`blob`), CHAR_LENGTH(`text`), MD5(`text`), small FROM big ORDER BY _id")
    assert rows == [("1", hashlib.md5(blob).hexdigest(), str(len(text)), hashlib.md5(text.encode()).hexdigest(), None),
                    ("2", None, None, None, "1")]
