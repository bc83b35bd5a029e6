"""The daemons' notifications to systemd (Type=notify units, deploy/systemd/; cli/daemon.h): a unix
datagram socket of the test's own stands in for systemd's, and apply and capture, started against
the running stack with NOTIFY_SOCKET naming it, must say READY=1 once they have connected (their
bookkeeping is on the servers by then), ping the watchdog WATCHDOG_USEC asks for, report their
counts in STATUS=, and say STOPPING=1 after SIGTERM before exiting 0; a daemon that cannot connect
never says READY=1 and ends with its error in STATUS=."""
import re
import signal
import socket
import time

from confluent_kafka.admin import AdminClient

import pipeline
import stack


class NotifySocket:
    """An abstract unix datagram socket, as systemd's notify socket; collects every message."""

    def __init__(self):
        self.name = stack.unique("m2m-notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.setblocking(False)
        self.messages = []  # (monotonic time received, {key: value}) in order

    @property
    def env(self):
        return {"NOTIFY_SOCKET": "@" + self.name}

    def receive(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            self.messages.append((time.monotonic(), dict(line.split("=", 1) for line in data.decode().splitlines())))

    def first(self, key, value=None):
        """The index of the first message with `key` (equal to `value` if given), or None."""
        for i, (_, message) in enumerate(self.receive()):
            if key in message and (value is None or message[key] == value):
                return i
        return None

    def wait_for(self, key, process, value=None, timeout=120):
        def arrived():
            found = self.first(key, value)
            if found is None and process.proc.poll() is not None:
                raise AssertionError(f"exited {process.proc.returncode} before {key}:\n{process.log()[-3000:]}")
            return found is not None and found + 1
        return stack.wait_for(arrived, timeout=timeout, what=f"{key} from {process.args[1]}") - 1

    def statuses(self):
        return [m["STATUS"] for _, m in self.receive() if "STATUS" in m]

    def close(self):
        self.sock.close()


def stop_and_check(notify, process):
    """SIGTERM: STOPPING=1 comes, the daemon exits 0, and its last word is STATUS=stopped."""
    process.proc.send_signal(signal.SIGTERM)
    stopping = notify.wait_for("STOPPING", process, value="1", timeout=60)
    assert process.stop(timeout=120) == 0, process.log()[-3000:]
    assert stopping > notify.first("READY", "1")
    assert notify.statuses()[-1] == "stopped"
    assert sum(1 for _, m in notify.receive() if m.get("STOPPING") == "1") == 1


def test_apply_tells_systemd_ready_status_watchdog_and_stopping(mysql_db, kafka_topic, tmp_path):
    database, conn = mysql_db
    topic = kafka_topic(partitions=2)
    notify = NotifySocket()
    env = {**notify.env, "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    apply = pipeline.Process(["apply", "--topics", topic, "--group", stack.unique("g"),
                              "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-host", stack.MYSQL["host"],
                              "--mysql-port", stack.MYSQL["port"], "--mysql-user", stack.MYSQL["user"],
                              "--mysql-database", database], tmp_path / "apply.log", env=env)
    try:
        assert notify.wait_for("STATUS", apply) == 0  # "starting: ..." before anything else
        ready = notify.wait_for("READY", apply, value="1")
        # Connected for real: its offsets table is in MySQL.
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES LIKE '_m2m_offsets'")
            assert cur.fetchall()
        assert notify.receive()[ready][1]["STATUS"].startswith("applying: 0 events in 0 batches")
        first_ping = notify.wait_for("WATCHDOG", apply, value="1", timeout=30)
        stack.wait_for(lambda: sum(1 for _, m in notify.receive() if m.get("WATCHDOG") == "1") >= 4, timeout=30,
                       what="more watchdog pings")
        pings = [t for t, m in notify.receive()[first_ping:] if m.get("WATCHDOG") == "1"]
        # Half of WATCHDOG_USEC apart, give or take the notifier's 0.2 s tick and a busy machine.
        assert all(0.3 < b - a < 2.0 for a, b in zip(pings, pings[1:])), pings
        apply.assert_running()
        stop_and_check(notify, apply)
    finally:
        if apply.proc.poll() is None:
            apply.kill()
        notify.close()


def test_apply_is_ready_before_any_topic_matches_its_pattern(mysql_db, tmp_path):
    """Capture makes a collection's topic with its first event: until then the group has nothing to
    assign, and apply waits for it running, ready."""
    database, _ = mysql_db
    notify = NotifySocket()
    apply = pipeline.Process(["apply", "--topic-pattern", stack.unique("none") + r"\..*", "--group", stack.unique("g"),
                              "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-host", stack.MYSQL["host"],
                              "--mysql-port", stack.MYSQL["port"], "--mysql-database", database],
                             tmp_path / "apply.log", env=notify.env)
    try:
        notify.wait_for("READY", apply, value="1")
        assert "assigned" not in apply.log()
        stop_and_check(notify, apply)
    finally:
        if apply.proc.poll() is None:
            apply.kill()
        notify.close()


def events(status):
    """N of "capturing: N events ..."."""
    return int(re.match(r"capturing: (\d+) events", status).group(1))


def test_capture_reports_its_progress_in_status(mongo_db, tmp_path):
    mongo_db["orders"].insert_many([{"_id": i, "qty": i} for i in range(40)])  # the snapshot's
    prefix = stack.unique("nt")
    notify = NotifySocket()
    capture = pipeline.Process(["capture", "--mongo-uri", stack.MONGO_URI, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                                "--topic-prefix", prefix, "--name", "nt", "--db", mongo_db.name,
                                "--max-batch-ms", "100"], tmp_path / "capture.log", env=notify.env)
    try:
        ready = notify.wait_for("READY", capture, value="1")
        # Ready means its checkpoint topic exists: Kafka transactions initialised, the checkpoint read.
        topics = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP}).list_topics(timeout=30).topics
        assert f"{prefix}.__checkpoints" in topics
        assert notify.receive()[ready][1]["STATUS"].startswith("capturing: ")
        # The snapshot's 40 documents, then 10 changes after it, show in later STATUS= lines.
        stack.wait_for(lambda: "40 snapshot documents" in notify.statuses()[-1], timeout=120,
                       what="the snapshot's count in STATUS=")
        before = events(notify.statuses()[-1])
        mongo_db["orders"].insert_many([{"_id": 100 + i} for i in range(10)])
        stack.wait_for(lambda: events(notify.statuses()[-1]) >= before + 10, timeout=120,
                       what="the streamed changes' count in STATUS=")
        stop_and_check(notify, capture)
    finally:
        if capture.proc.poll() is None:
            capture.kill()
        notify.close()
        admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix + ".")]
        if mine:
            for f in admin.delete_topics(mine).values():
                f.result(60)


def test_a_daemon_that_cannot_connect_is_never_ready(tmp_path):
    notify = NotifySocket()
    closed_port = stack.free_port()  # nothing listens there
    apply = pipeline.Process(["apply", "--topics", stack.unique("t"), "--group", stack.unique("g"),
                              "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-host", stack.MYSQL["host"],
                              "--mysql-port", closed_port, "--mysql-database", "unreached", "--retry-for", "2"],
                             tmp_path / "apply.log", env=notify.env)
    try:
        assert apply.proc.wait(120) == 3, apply.log()[-3000:]  # a server unreachable (mongo2mysql --help)
        assert notify.first("READY") is None
        assert notify.first("STOPPING", "1") is not None
        last = notify.statuses()[-1]
        assert last.startswith("exiting: ") and "MySQL" in last, last
    finally:
        if apply.proc.poll() is None:
            apply.kill()
        notify.close()

