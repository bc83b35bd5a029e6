"""Runs the product's processes (build/mongo2mysql capture, apply) for tests and reads what they
published, the way a user's consumer would (read_committed)."""
import getpass
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

from bson import json_util
from confluent_kafka import Consumer, TopicPartition

import stack


class Process:
    """A mongo2mysql subcommand running in the background, its output in a log file."""

    def __init__(self, args, log_path, env=None, program=None):
        """Runs `program` (default build/mongo2mysql) with `args`."""
        self.args = (program or [str(stack.BINARY)]) + [str(a) for a in args]
        self.log_path = log_path
        # Restarts append to the same file; log() is this process's part only.
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"], **(env or {})})

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def stop(self, timeout=60) -> int:
        """SIGTERM and wait: a clean stop returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self):
        """SIGKILL: a crash at whatever point the process is."""
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def assert_running(self):
        assert self.proc.poll() is None, f"{self.args[1]} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"


def start_capture(tmp_path, db, collection=None, prefix="m2m", name="capture", extra=(), mongo_uri=None):
    """build/mongo2mysql capture as a Process; its capture name is kept as .name. Without `db` it
    watches the whole deployment."""
    args = ["capture", "--mongo-uri", mongo_uri or stack.MONGO_URI, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
            "--topic-prefix", prefix, "--name", name, "--max-batch-ms", "100", *extra]
    if db:
        args += ["--db", db]
    if collection:
        args += ["--collection", collection]
    process = Process(args, tmp_path / f"capture-{name}.log")
    process.name = name
    return process


def start_mongo_standin(tmp_path, env=None, port=None, heap="512m"):
    """A MongoDB stand-in of the caller's own, for server settings the shared one cannot change (the
    oplog's cap: M2M_MONGO_OPLOG_MAX_EVENTS, ..._BYTES in `env`): stack/mongo-launcher as in this
    checkout, on a free port, with its own data file. Returns the Process; its URI is .uri. With
    the `port` of a stopped one, that server starts again with its data. `heap`: its JVM's -Xmx (it
    scans the whole collection for a range query: large collections of large documents need more)."""
    classes = tmp_path / "mongo-launcher"
    if not classes.exists():
        sources = sorted(str(p) for p in (stack.ROOT / "stack" / "mongo-launcher").glob("*.java"))
        subprocess.run(["javac", "-d", str(classes), "-cp", str(stack.STATE / "jars" / "mongo" / "*"), *sources],
                       check=True, capture_output=True, timeout=300)
    if port is None:
        with socket.socket() as s:
            s.bind((stack.HOST, 0))
            port = s.getsockname()[1]
    process = Process([stack.HOST, port, tmp_path / f"mongo-{port}.mv"], tmp_path / f"mongo-{port}.log", env=env,
                      program=["java", f"-Xmx{heap}", "-cp", f"{stack.STATE / 'jars' / 'mongo' / '*'}:{classes}",
                               "MongoStandIn"])
    stack.wait_for(lambda: process.assert_running() or "listening on" in process.log(), timeout=120,
                   what="the MongoDB stand-in to listen")
    process.uri = f"mongodb://{stack.HOST}:{port}"
    return process


def start_mariadb(tmp_path, *options):
    """A MariaDB server of the caller's own, for server settings the shared one must keep (e.g.
    --max-allowed-packet=4M): a new data directory in tmp_path, a free port, the stack's user and
    password. Returns the Process; its address is .mysql (keyword arguments of pymysql.connect)."""
    data = tmp_path / "mariadb"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", f"--user={getpass.getuser()}",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=300)
    with socket.socket() as s:
        s.bind((stack.HOST, 0))
        port = s.getsockname()[1]
    sock = tmp_path / "mariadb.sock"
    process = Process([f"--datadir={data}", f"--user={getpass.getuser()}", f"--bind-address={stack.HOST}",
                       f"--port={port}", f"--socket={sock}", f"--pid-file={tmp_path / 'mariadb.pid'}",
                       "--innodb-buffer-pool-size=64M", "--character-set-server=utf8mb4",
                       "--collation-server=utf8mb4_bin", *options],
                      tmp_path / "mariadb.log", program=["mariadbd", "--no-defaults"])

    def admin(sql):
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e", sql],
                              capture_output=True, text=True, timeout=60)
    stack.wait_for(lambda: process.assert_running() or admin("SELECT 1").returncode == 0, timeout=120,
                   what="the private MariaDB to answer")
    user, password = stack.MYSQL["user"], stack.MYSQL["password"]
    result = admin(f"CREATE USER '{user}'@'{stack.HOST}' IDENTIFIED BY '{password}'; "
                   f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{stack.HOST}'")
    assert result.returncode == 0, result.stderr
    process.mysql = dict(stack.MYSQL, port=port)
    return process


def fold(messages):
    """The state capture's events describe, per _id (canonical Extended JSON): reads, inserts and
    replaces set it, deletes remove it, updates set it from their looked-up full document (capture's
    default)."""
    state = {}
    for key, value in messages:
        if value["op"] == "m":
            continue
        _id = json.dumps(json.loads(key["id"]), sort_keys=True)
        if value["op"] == "d":
            state.pop(_id, None)
        elif value["after"] is not None:
            state[_id] = json_util.loads(value["after"])
    return state


def has_id(key, _id):
    """Whether a capture message key (docs/events.md) is that of the document with this _id; the key
    of a drop or rename has no id."""
    return key is not None and key.get("id") is not None and json.loads(key["id"]) == _id


def mongo_state(collection):
    """Every document of a pymongo collection, keyed like fold()."""
    return {json.dumps(json.loads(json_util.dumps(d["_id"], json_options=json_util.CANONICAL_JSON_OPTIONS)),
                       sort_keys=True): d for d in collection.find()}


def stream_checkpoint(prefix, name):
    """capture `name`'s committed stream checkpoint (docs/checkpoints.md), or None."""
    topic = f"{prefix}.__checkpoints"
    if topic_end_offsets(topic) == 0:
        return None
    records = {k: v for k, v in ((m[0], m[1]) for m in read_all_raw(topic))}
    value = records.get(f"stream/{name}")
    return None if value is None else json.loads(value)


def wait_for_checkpoint(prefix, capture, name=None, timeout=300, snapshot_done=True):
    """Waits until capture has committed its start point and (unless snapshot_done is False)
    finished its snapshot: changes made after that reach Kafka as stream events, never as reads.
    capture says both in its log; reading its checkpoint topic to the end instead could wait for a
    moment without an open transaction, which a busy capture may not leave."""
    name = name or capture.name
    wanted = [f"capture {name}: streaming"] if snapshot_done else [
        f"capture {name}: start point committed", f"capture {name}: resuming after checkpoint"]

    def ready():
        capture.assert_running()
        log = capture.log()
        return any(line in log for line in wanted)
    stack.wait_for(ready, timeout=timeout, interval=0.3, what=f"capture {name} to stream")


def read_topic(topic, expected, timeout=120, process=None):
    """Reads `topic` from the start with read_committed until `expected` messages arrived.
    Returns [(key, value)] with both decoded from JSON (None for a null key or value)."""
    seen = itertools.count(1)
    return read_until(topic, lambda key, value: next(seen) >= expected, timeout, process)


def read_until(topic, done, timeout=300, process=None):
    """Reads `topic` from the start, read_committed, until done(key, value) is true for a message;
    returns every message up to and including it. One pass, for large topics."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("reader"),
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process:
                process.assert_running()
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                key = None if msg.key() is None else json.loads(msg.key())
                value = None if msg.value() is None else json.loads(msg.value())
                out.append((key, value))
                if done(key, value):
                    return out
    finally:
        consumer.close()
    raise AssertionError(f"{topic}: the awaited message did not arrive within {timeout}s ({len(out)} read)")


def read_all(topic, timeout=120):
    """Every committed message of `topic` up to its current end, read_committed: for exact counts
    (read_topic stops at the count it expects and cannot tell if more follow). Partitions are
    concatenated; see read_all_by_partition for per-partition order."""
    return [m for messages in read_all_by_partition(topic, timeout).values() for m in messages]


def read_all_raw(topic, timeout=120):
    """Like read_all, with keys and values as text, undecoded."""
    return [m for messages in read_all_by_partition(topic, timeout, decode=None).values() for m in messages]


def read_all_by_partition(topic, timeout=120, decode=json.loads):
    """{partition: [(key, value)]} of every committed message of `topic` up to its current end,
    each key and value passed through `decode` (None leaves them as text)."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("reader"),
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending, out = set(partitions), {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"{topic}: not at its end after {timeout}s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                pending.discard(msg.partition())
                continue
            convert = lambda b: None if b is None else (decode(b) if decode else b.decode())  # noqa: E731
            out[msg.partition()].append((convert(msg.key()), convert(msg.value())))
        return out
    finally:
        consumer.close()


def topic_end_offsets(topic):
    """Total of the high watermarks of `topic`'s partitions; 0 while the topic does not exist."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("w")})
    try:
        md = consumer.list_topics(timeout=30).topics.get(topic)
        if md is None:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in md.partitions)
    finally:
        consumer.close()


def apply_args(database, group, topics=None, pattern=None, extra=()):
    """Arguments of `mongo2mysql apply` against the local stack (password from the environment)."""
    args = ["apply", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--group", group,
            "--mysql-host", stack.MYSQL["host"], "--mysql-port", stack.MYSQL["port"],
            "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, *extra]
    if topics:
        args += ["--topics", ",".join(topics)]
    if pattern:
        args += ["--topic-pattern", pattern]
    return [str(a) for a in args]


def start_apply(tmp_path, database, group, topics=None, pattern=None, name="apply", extra=()):
    """`mongo2mysql apply` running as a daemon; stop() or kill() it."""
    return Process(apply_args(database, group, topics, pattern, extra), tmp_path / f"apply-{name}.log")


def run_apply(database, group, topics=None, pattern=None, extra=(), timeout=600):
    """`mongo2mysql apply --until-caught-up`: applies everything in the topics, then must exit 0."""
    result = subprocess.run([str(stack.BINARY), *apply_args(database, group, topics, pattern, extra),
                             "--until-caught-up"], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    assert result.returncode == 0, f"apply exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def applied_offsets(conn, database, group):
    """{(topic, partition): next offset} apply has stored for `group` in `database`."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                    "TABLE_NAME = '_m2m_offsets'", (database,))
        if cur.fetchone()[0] == 0:
            return {}
        cur.execute(f"SELECT topic, `partition`, next_offset FROM `{database}`._m2m_offsets WHERE group_id = %s",
                    (group,))
        return {(bytes(t).decode() if isinstance(t, (bytes, bytearray)) else t, p): o for t, p, o in cur.fetchall()}


def pump(src, dst):
    """Copies bytes from socket src to dst until either side closes, then shuts both down: one
    direction of a test's TCP proxy (a thread each)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def metrics_url(process):
    """The /metrics address a daemon logged (it was started with --metrics-port 0)."""
    def logged():
        process.assert_running()
        return re.search(r"metrics at http://[0-9.]+:(\d+)/metrics", process.log())
    port = stack.wait_for(logged, timeout=120, what="the metrics address in the log").group(1)
    return f"http://127.0.0.1:{port}/metrics"


def scrape_text(url):
    """What a daemon's /metrics endpoint serves, in the text exposition format 0.0.4."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain"), response.headers
        return response.read().decode()


def scrape(url):
    """{'name{labels}': value} of every sample the endpoint serves."""
    samples = {}
    for line in scrape_text(url).splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def metric_families(url):
    """{family name: type} of every family the endpoint declares, with or without samples."""
    return dict(line.split()[2:4] for line in scrape_text(url).splitlines() if line.startswith("# TYPE "))
