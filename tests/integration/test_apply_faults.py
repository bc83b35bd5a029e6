"""mongo2mysql apply when something around it fails: events deleted from Kafka before apply read them
(it stops with the gap named, or continues when told to accept the loss), MySQL unreachable during a
rebalance (the partitions are started once MySQL is back, and their lag is never reported as 0
meanwhile), and MySQL unreachable for 15 s under a steady stream of events (apply waits, then the
tables are exact). MySQL's outages are made by a TCP proxy of the test's own between apply and the
shared MariaDB, which the test cuts (closes every connection, refuses new ones) and restores."""
import json
import math
import socket
import subprocess
import threading
import time

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import pipeline
import scenarios
import stack
from test_apply import Workload, assert_model_state, make_topic, produce, topics, total  # noqa: F401
from pipeline import metrics_url, scrape


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; cut() closes every connection and refuses new ones
    (the port stops listening, as while a server restarts), restore() listens again on the same port."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.sockets = []
        self.listener = None
        self.accepting = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.restore()

    def restore(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self.listener = listener
        self.accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self.accepting.start()

    def cut(self):
        listener, self.listener = self.listener, None
        if listener is not None:
            self.accepting.join()
            listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    close = cut

    def _accept(self, listener):
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pipeline.pump, args=(a, b), daemon=True).start()


def via(proxy):
    """apply's options to reach MySQL through `proxy`."""
    return ["--mysql-port", str(proxy.port)]


def apply_run(database, group, topics_, extra=()):
    """`apply --until-caught-up`, whatever its exit status: the CompletedProcess."""
    return subprocess.run([str(stack.BINARY), *pipeline.apply_args(database, group, topics_, extra=extra),
                           "--until-caught-up"], capture_output=True, text=True, timeout=300,
                          env={"M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})


def rows(conn, table):
    with conn.cursor() as cur:
        cur.execute(f"SELECT `_id`, n FROM `{table}` ORDER BY `_id`")
        return [tuple(r) for r in cur.fetchall()]


def inserts(prefix, collection, ids, start_ordinal):
    """Scenario-format insert events of documents {_id, n: _id}."""
    return [scenarios.encode({"op": "insert", "collection": collection, "document": json.dumps({"_id": i, "n": i})},
                             prefix, start_ordinal + k) for k, i in enumerate(ids)]


def send(messages):
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    for topic, key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0


# ---------------------------------------------------------------------------------------------


def test_events_deleted_from_kafka_stop_apply_naming_the_gap(mysql_db, topics):
    """Apply applies 100 events and stops; 100 more arrive, and the first 50 of them are deleted
    (DeleteRecords, as retention would) before apply runs again. Apply must not jump over them: it
    exits non-zero naming topic, partition, stored offset and the log's first offset, and applies
    nothing. Run again with --accept-lost-events, it applies the 50 that are left and says what it
    skipped."""
    database, conn = mysql_db
    prefix = stack.unique("gap")
    topic = make_topic(prefix, "gap", 1)
    topics.append(topic)
    group = stack.unique("g")
    send(inserts(prefix, "gap", range(100), 1))
    pipeline.run_apply(database, group, topics=[topic])
    assert pipeline.applied_offsets(conn, database, group) == {(topic, 0): 100}

    send(inserts(prefix, "gap", range(100, 200), 101))
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    deleted = admin.delete_records([TopicPartition(topic, 0, 150)])[TopicPartition(topic, 0, 150)].result(60)
    assert deleted.low_watermark == 150  # the partition's new first offset

    stopped = apply_run(database, group, [topic])
    assert stopped.returncode == 1, stopped.stderr
    assert f"events 100..149 of {topic}[0] are no longer in Kafka" in stopped.stderr, stopped.stderr
    assert "applied up to offset 100" in stopped.stderr and "first offset is now 150" in stopped.stderr
    assert "--accept-lost-events" in stopped.stderr and "--resnapshot" in stopped.stderr
    assert rows(conn, "gap") == [(i, i) for i in range(100)]
    assert pipeline.applied_offsets(conn, database, group) == {(topic, 0): 100}

    accepted = apply_run(database, group, [topic], extra=["--accept-lost-events"])
    assert accepted.returncode == 0, accepted.stderr
    assert f"events 100..149 of {topic}[0]" in accepted.stdout + accepted.stderr
    assert "continuing at offset 150" in accepted.stdout + accepted.stderr
    assert rows(conn, "gap") == [(i, i) for i in list(range(100)) + list(range(150, 200))]
    assert pipeline.applied_offsets(conn, database, group) == {(topic, 0): 200}


def test_mysql_away_during_a_rebalance_is_waited_out(mysql_db, topics, tmp_path):
    """Apply is idle when MySQL goes away; then a topic matching its pattern appears, so the group
    rebalances and apply cannot read the stored offsets of its new assignment. It must keep the
    partitions, report them as waiting (lag unknown, never 0), and start them once MySQL is back:
    every event of both topics is applied, exactly."""
    database, conn = mysql_db
    prefix = stack.unique("reb")
    workload = Workload(seed=3, documents=200)
    first = [workload.next_event() for _ in range(1500)]
    crash = make_topic(prefix, "crash", 2)
    topics.append(crash)
    produce(crash, prefix, first)
    group = stack.unique("g")
    proxy = TcpProxy((stack.MYSQL["host"], stack.MYSQL["port"]))
    apply = pipeline.start_apply(tmp_path, database, group, pattern=f"{prefix}\\..*",
                                 extra=via(proxy) + ["--metrics-port", "0", "--max-batch-ms", "100",
                                                     "--kafka", "topic.metadata.refresh.interval.ms=1000"])
    try:
        url = metrics_url(apply)
        stack.wait_for(lambda: apply.assert_running() or total(pipeline.applied_offsets(conn, database, group)) == 1500,
                       timeout=180, what="the first events applied")
        proxy.cut()
        second = make_topic(prefix, "second", 1)
        topics.append(second)
        send(inserts(prefix, "second", range(40), 10001))

        def waiting():
            apply.assert_running()
            m = scrape(url)
            return m.get(f'm2m_apply_partitions_waiting{{group="{group}"}}', 0) >= 1 and m
        metrics = stack.wait_for(waiting, timeout=120, what="the new assignment to wait for MySQL")
        assert math.isnan(metrics[f'm2m_apply_lag_events{{group="{group}"}}'])
        proxy.restore()
        rest = [workload.next_event() for _ in range(500)]
        produce(crash, prefix, rest, 1501)
        stack.wait_for(lambda: apply.assert_running() or
                       total(pipeline.applied_offsets(conn, database, group)) == 1500 + 500 + 40,
                       timeout=180, what="both topics applied after MySQL came back")
        stack.wait_for(lambda: scrape(url)[f'm2m_apply_partitions_waiting{{group="{group}"}}'] == 0, timeout=60,
                       what="no partition waiting")
    finally:
        apply.stop()
        proxy.close()
    log = apply.log()
    assert "not started yet" in log, log[-3000:]
    assert rows(conn, "second") == [(i, i) for i in range(40)]
    assert_model_state(conn, database, workload)


def test_mysql_outage_under_a_steady_stream_is_waited_out(mysql_db, topics, tmp_path):
    """Events flow at a steady pace while MySQL is unreachable for 15 s (every connection closed, new
    ones refused, as during a restart). Apply logs what it waits for, does not exit, and once MySQL
    is back the tables equal the model: nothing lost, nothing twice."""
    database, conn = mysql_db
    workload = Workload(seed=11, documents=400)
    events = [workload.next_event() for _ in range(6000)]
    prefix = stack.unique("out")
    topic = make_topic(prefix, "crash", 2)
    topics.append(topic)
    group = stack.unique("g")
    proxy = TcpProxy((stack.MYSQL["host"], stack.MYSQL["port"]))
    apply = pipeline.start_apply(tmp_path, database, group, topics=[topic],
                                 extra=via(proxy) + ["--max-batch-ms", "100"])
    done = threading.Event()

    def flow():  # 200 events every second, about 30 s
        for k in range(0, len(events), 200):
            produce(topic, prefix, events[k:k + 200], k + 1)
            time.sleep(1)
        done.set()

    producer = threading.Thread(target=flow)
    producer.start()
    try:
        stack.wait_for(lambda: apply.assert_running() or total(pipeline.applied_offsets(conn, database, group)) >= 1000,
                       timeout=120, what="apply under way")
        proxy.cut()
        cut_at = time.monotonic()
        while time.monotonic() - cut_at < 15:  # the outage: apply must keep running through it
            apply.assert_running()
            time.sleep(0.5)
        assert f"waiting for MySQL at 127.0.0.1:{proxy.port}" in apply.log(), apply.log()[-3000:]
        proxy.restore()
        stack.wait_for(lambda: apply.assert_running() or (done.is_set() and total(
            pipeline.applied_offsets(conn, database, group)) == len(events)), timeout=240,
            what="every event applied after the outage")
    finally:
        producer.join()
        apply.stop()
        proxy.close()
    assert "working again after" in apply.log()
    assert_model_state(conn, database, workload)
