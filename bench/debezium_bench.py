"""The peer: Debezium's JDBC sink connector (Maven Central, stack/maven/debezium) in a standalone
Kafka Connect worker, upsert mode, writing the same logical workload as bench/apply_bench.py into
the same MariaDB. Figures: sustained events/s (from the worker's committed offsets, first commit to
last, as for apply), the Connect JVM's peak RSS, and the tables' row counts and checksums, which must
equal apply's for the same --events/--documents.

The sink cannot map a document: it writes one flat row per record into one table per topic. So the
benchmark hands it the workload already normalised, in the format it takes best without a schema
registry, JSON with an inline schema: each document becomes a flat root row on <prefix>.bench
(the sub-document's fields as address_city/address_zip, the whole row after a delta update) and one
row per array element on <prefix>.bench_items keyed by (_id, _idx1); deletes, and array elements
that a replace dropped, are tombstones. That is work apply does itself (delta updates, child-table
replacement), so the comparison favours the peer.

  .stack/venv/bin/python bench/debezium_bench.py --events 100000
"""
import json
import shutil
import socket
import subprocess

import benchlib
from benchlib import stack

JARS = stack.STATE / "jars" / "debezium"

ROOT_FIELDS = [("_id", "int64", False), ("name", "string", True), ("n", "int64", True),
               ("address_city", "string", True), ("address_zip", "string", True), ("pad", "string", True),
               ("note", "string", True)]
ITEM_FIELDS = [("_id", "int64", False), ("_idx1", "int64", False), ("sku", "string", True), ("qty", "int64", True)]


def _schema(name, fields):
    return {"type": "struct", "name": name, "optional": False,
            "fields": [{"field": f, "type": t, "optional": o} for f, t, o in fields]}


def _message(schema, payload):
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


class Encoder:
    """Turns workload events into flat keyed records, keeping each document's current state (the
    full row after a delta update, how many array elements it has)."""

    ROOT_KEY = _schema("bench.Key", ROOT_FIELDS[:1])
    ROOT_VALUE = _schema("bench.Value", ROOT_FIELDS)
    ITEM_KEY = _schema("bench_items.Key", ITEM_FIELDS[:2])
    ITEM_VALUE = _schema("bench_items.Value", ITEM_FIELDS)

    def __init__(self, prefix):
        self.root_topic, self.item_topic = f"{prefix}.bench", f"{prefix}.bench_items"
        self.rows, self.items = {}, {}

    def records(self, event):
        key = json.loads(event.get("key") or event["document"])["_id"]
        kept = self.items.get(key, 0)
        if event["op"] == "delete":
            self.rows.pop(key, None)
            self.items.pop(key, None)
            yield self.root_topic, _message(self.ROOT_KEY, {"_id": key}), None
            yield from self._item_tombstones(key, 0, kept)
            return
        if event["op"] == "update":
            updated = json.loads(event["updated"])
            row = {**self.rows[key], "n": updated["n"], "address_city": updated["address.city"], "note": None}
            items = []
        else:
            doc = json.loads(event["document"])
            row = {"_id": key, "name": doc["name"], "n": doc["n"], "address_city": doc["address"]["city"],
                   "address_zip": doc["address"]["zip"], "pad": doc["pad"], "note": doc["note"]}
            items = doc["items"]
            self.items[key] = len(items)
        self.rows[key] = row
        yield self.root_topic, _message(self.ROOT_KEY, {"_id": key}), _message(self.ROOT_VALUE, row)
        for idx, item in enumerate(items):
            item_key = {"_id": key, "_idx1": idx}
            yield (self.item_topic, _message(self.ITEM_KEY, item_key),
                   _message(self.ITEM_VALUE, {**item_key, "sku": item["sku"], "qty": item["qty"]}))
        if event["op"] != "update":
            yield from self._item_tombstones(key, len(items), kept)

    def _item_tombstones(self, key, start, end):
        for idx in range(start, end):
            yield self.item_topic, _message(self.ITEM_KEY, {"_id": key, "_idx1": idx}), None


def _free_port():
    with socket.socket() as s:
        s.bind((stack.HOST, 0))
        return s.getsockname()[1]


def _properties(path, values):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return str(path)


def run(events=100000, documents=20000, partitions=4, batch=5000):
    if not (JARS / ".stamp").exists():
        raise RuntimeError("Debezium's jars are missing: run `bash stack/install.sh debezium` (make bench does)")
    prefix = stack.unique("dbz")
    encoder = Encoder(prefix)
    topics = [encoder.root_topic, encoder.item_topic]
    for topic in topics:
        benchlib.make_topic(topic, partitions)
    database = stack.unique("dbz")
    work = stack.STATE / "bench" / prefix
    work.mkdir(parents=True)
    conn = benchlib.mysql()
    connect = None
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
        records = [r for e in benchlib.workload(events, documents) for r in encoder.records(e)]
        payload = benchlib.produce(records)
        name = prefix
        worker = _properties(work / "worker.properties", {
            "bootstrap.servers": stack.KAFKA_BOOTSTRAP,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true", "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": work / "offsets",
            # Committed offsets are the progress the benchmark reads: commit often.
            "offset.flush.interval.ms": "250",
            "listeners": f"http://{stack.HOST}:{_free_port()}",
            "consumer.max.poll.records": str(batch),
        })
        connector = _properties(work / "connector.properties", {
            "name": name, "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector", "tasks.max": "1",
            "topics": ",".join(topics),
            "connection.url": f"jdbc:mariadb://{stack.MYSQL['host']}:{stack.MYSQL['port']}/{database}",
            "connection.username": stack.MYSQL["user"], "connection.password": stack.MYSQL["password"],
            "insert.mode": "upsert", "delete.enabled": "true", "primary.key.mode": "record_key",
            "schema.evolution": "basic", "batch.size": str(batch), "use.reduction.buffer": "true",
            "collection.name.format": "${topic}", "database.time_zone": "UTC",
        })
        log4j = _properties(work / "log4j.properties", {
            "log4j.rootLogger": "INFO, stdout", "log4j.appender.stdout": "org.apache.log4j.ConsoleAppender",
            "log4j.appender.stdout.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.stdout.layout.ConversionPattern": "[%d] %p %m (%c)%n"})
        log = open(work / "connect.log", "wb")
        connect = subprocess.Popen(["java", f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{JARS}/*",
                                    "org.apache.kafka.connect.cli.ConnectStandalone", worker, connector],
                                   stdout=log, stderr=subprocess.STDOUT)
        rss = benchlib.PeakRss(connect.pid)
        from confluent_kafka import Consumer, TopicPartition

        group = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": f"connect-{name}"})
        partitions_of = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        progress = lambda: sum(max(tp.offset, 0) for tp in group.committed(partitions_of, timeout=30))  # noqa: E731
        try:
            rate = benchlib.sustained_rate(progress, len(records), events, connect)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; Connect's log: {work / 'connect.log'}") from None
        group.close()
        peak = rss.stop()
        tables = _tables(conn, database)
    finally:
        if connect is not None and connect.poll() is None:
            connect.terminate()
            connect.wait(60)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
        benchlib.delete_topics(topics)
    shutil.rmtree(work)
    return {"workload": {"events": events, "documents": documents, "partitions": partitions, "batch": batch,
                         "records": len(records), "average_value_bytes": round(payload / len(records))},
            "debezium_jdbc_sink": rate, "peak_rss_mb": {"kafka_connect": peak.get("java")}, "tables": tables}


def _tables(conn, database):
    """Checksums of the sink's two tables, whatever names it gave them."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
        names = [r[0] for r in cur.fetchall()]
    items = next(n for n in names if n.endswith("items"))
    root = next(n for n in names if n != items)
    return {"root": benchlib.table_checksum(conn, f"`{database}`.`{root}`", benchlib.ROOT_COLUMNS),
            "items": benchlib.table_checksum(conn, f"`{database}`.`{items}`", benchlib.ITEM_COLUMNS)}


def main():
    benchlib.workload_main("debezium", run, __doc__, 100000, 20000, 5000, "the sink's batch.size and max.poll.records")

if __name__ == "__main__":
    main()
