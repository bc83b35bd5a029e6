"""mongo2mysql status and the /metrics endpoints of capture and apply, against a real pipeline:
snapshot progress, applied counts and zero lag once apply has caught up, a lag while apply is
stopped with events waiting, quarantined events, counters that match the events sent, and a clear
failure when a server cannot be reached."""
import json
import subprocess

from confluent_kafka import Producer

import pipeline
import stack
from pipeline import metrics_url, scrape


def status(database, group, prefix, *extra):
    """`mongo2mysql status --json` of the pipeline; returns (parsed JSON, the collection's entry)."""
    result = subprocess.run(
        [str(stack.BINARY), "status", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topic-prefix", prefix,
         "--group", group, "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
         "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, "--interval", "0", "--json", *extra],
        capture_output=True, text=True, timeout=120, env={"M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def collection(report, name):
    found = [c for c in report["collections"] if c["collection"] == name]
    assert len(found) == 1, report
    return found[0]


def test_status_and_metrics_follow_the_pipeline(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    prefix = stack.unique("st")
    group = stack.unique("g")
    ns = f"{mongo_db.name}.orders"
    topic = f"{prefix}.{ns}"
    orders = mongo_db["orders"]
    orders.insert_many([{"_id": i, "name": f"o{i}"} for i in range(30)])  # copied by the snapshot
    # An _m2m_offsets from before applied_events existed: apply adds the columns.
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE _m2m_offsets (group_id VARBINARY(255) NOT NULL, topic VARBINARY(255) NOT NULL, "
                    "`partition` INT NOT NULL, next_offset BIGINT NOT NULL, updated_at DATETIME(3) NOT NULL, "
                    "PRIMARY KEY (group_id, topic, `partition`))")

    capture = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix, name="st",
                                     extra=["--snapshot-chunk-size", "10", "--metrics-port", "0"])
    apply = None
    try:
        capture_metrics = metrics_url(capture)
        pipeline.wait_for_checkpoint(prefix, capture)
        orders.insert_many([{"_id": i, "name": f"o{i}"} for i in range(30, 50)])
        for i in range(5):
            orders.update_one({"_id": i}, {"$set": {"name": f"changed{i}"}})
        label = f'{{capture="st",collection="{ns}"}}'
        stack.wait_for(lambda: scrape(capture_metrics).get("m2m_capture_collection_events_total" + label, 0) >= 25,
                       timeout=120, what="capture to publish the 25 changes")

        # The stream starts at the cluster time recorded before the snapshot, so it may also carry
        # inserts the snapshot copied (docs/checkpoints.md): the counters must match the topic.
        def counted_as_published():
            m = scrape(capture_metrics)
            streamed = m["m2m_capture_collection_events_total" + label]
            return m if len(pipeline.read_all(topic)) == streamed + 30 else None
        m = stack.wait_for(counted_as_published, timeout=120, what="the counters to match the topic")
        streamed = m["m2m_capture_collection_events_total" + label]
        assert 25 <= streamed <= 55
        assert m['m2m_capture_events_total{capture="st"}'] == streamed
        assert m['m2m_capture_snapshot_documents_total{capture="st"}'] == 30
        assert m['m2m_capture_dead_letters_total{capture="st"}'] == 0
        assert m['m2m_capture_transactions_total{capture="st"}'] >= 4  # start point, 3 chunks, snapshot done
        assert m['m2m_capture_last_event_timestamp_seconds{capture="st"}'] > 0
        assert m['process_resident_memory_bytes{capture="st"}'] > 1e6

        # One event apply cannot decode: quarantined.
        producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        producer.produce(topic, key=b'{"id": 99}', value=b"not json{")
        assert producer.flush(60) == 0
        sent = 30 + streamed + 1

        apply = pipeline.start_apply(tmp_path, database, group, topics=[topic],
                                     extra=["--metrics-port", "0", "--max-batch-ms", "100"])
        apply_metrics = metrics_url(apply)
        labels = f'{{group="{group}"}}'
        stack.wait_for(lambda: scrape(apply_metrics).get("m2m_apply_events_total" + labels) == sent,
                       timeout=180, what="apply to apply every event")
        m = scrape(apply_metrics)
        assert m[f'm2m_apply_topic_events_total{{group="{group}",topic="{topic}"}}'] == sent
        assert m["m2m_apply_quarantined_total" + labels] == 1
        assert m["m2m_apply_batches_total" + labels] >= 1
        assert m["m2m_apply_ddl_statements_total" + labels] >= 1  # CREATE TABLE orders
        assert m["m2m_apply_errors_total" + labels] == 0
        assert m["process_resident_memory_bytes" + labels] > 1e6
        stack.wait_for(lambda: scrape(apply_metrics)["m2m_apply_lag_events" + labels] == 0, timeout=60,
                       what="apply's lag metric to reach 0")
        assert scrape(apply_metrics)["m2m_apply_lag_seconds" + labels] == 0
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), SUM(name LIKE 'changed%') FROM orders")
            assert tuple(cur.fetchone()) == (50, 5)

        report = status(database, group, prefix)
        c = collection(report, ns)
        assert c["topic"] == topic and c["tables"] == ["orders"]
        assert c["applied_events"] == sent
        assert c["lag_events"] == 0 and c["lag_seconds"] == 0
        assert c["quarantined"] == 1
        assert c["last_applied_ms"] > 0 and c["last_captured_ms"] >= c["last_applied_ms"]
        assert c["snapshot"] == {"capture": "st", "documents": 30, "copied": 30, "chunks": 3, "chunks_done": 3,
                                 "complete": True}
        [cap] = [x for x in report["captures"] if x["name"] == "st"]
        assert cap["snapshot_done"] and cap["scope"] == f"collection:{ns}"
        assert cap["last_event_ms"] > 0 and cap["checkpoint_ms"] > 0

        # Apply stops; capture goes on: status shows what waits, and since when.
        assert apply.stop() == 0
        apply = None
        orders.insert_many([{"_id": i, "name": f"o{i}"} for i in range(50, 60)])
        stack.wait_for(lambda: scrape(capture_metrics)["m2m_capture_collection_events_total" + label] == streamed + 10,
                       timeout=120, what="capture to publish 10 more")
        c = collection(status(database, group, prefix), ns)
        assert 10 <= c["lag_events"] <= 20  # 10 events, and at most one commit marker each
        assert c["lag_seconds"] > 0
        assert c["applied_events"] == sent

        # Apply again: caught up, throughput measured over two samples.
        apply = pipeline.start_apply(tmp_path, database, group, topics=[topic], name="again",
                                     extra=["--max-batch-ms", "100"])
        stack.wait_for(lambda: collection(status(database, group, prefix), ns)["applied_events"] == sent + 10,
                       timeout=180, what="status to count the 10 new events as applied")
        c = collection(status(database, group, prefix, "--interval", "1"), ns)
        assert c["lag_events"] == 0 and c["lag_seconds"] == 0
        assert c["applied_per_s"] == 0  # nothing arrives any more

        text = subprocess.run([str(stack.BINARY), "status", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                               "--topic-prefix", prefix, "--interval", "0"],
                              capture_output=True, text=True, timeout=120)
        assert text.returncode == 0, text.stderr
        assert ns in text.stdout and "done" in text.stdout and "LAG EVENTS" in text.stdout
    finally:
        if apply:
            apply.stop()
        capture.stop()


def test_status_fails_clearly_when_a_server_is_unreachable():
    base = [str(stack.BINARY), "status", "--interval", "0", "--timeout", "3"]
    kafka = subprocess.run(base + ["--kafka-bootstrap", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert kafka.returncode == 3, kafka
    assert "cannot reach Kafka at 127.0.0.1:1" in kafka.stderr
    mysql = subprocess.run(base + ["--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-port", "1",
                                   "--mysql-database", "x"], capture_output=True, text=True, timeout=120)
    assert mysql.returncode == 3, mysql
    assert "cannot connect to MySQL at 127.0.0.1:1" in mysql.stderr


def test_metrics_port_in_use_is_an_error(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(stack.BINARY), "apply", "--topics", "x", "--mysql-database", "x",
                                 "--mysql-port", "1", "--metrics-host", "127.0.0.1", "--metrics-port", str(port)],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
