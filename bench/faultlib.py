"""The parts of the fault campaign (bench/faults.py): a stack of its own on ports of its own, daemons
run under a supervisor the way systemd runs a service, a writer that keeps a log of every write
MongoDB acknowledged, a probe of the pipeline's end-to-end lag, and the final audits of MySQL and
Kafka against the writer's log."""
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from benchlib import ROOT, stack

# The shared stack's installed jars and venv: a second stack reuses them, nothing is downloaded.
SHARED_STATE = Path(os.environ.get("M2M_STATE", ROOT / ".stack"))
JARS = Path(os.environ.get("M2M_JARS", SHARED_STATE / "jars"))
VENV = Path(os.environ.get("M2M_VENV", SHARED_STATE / "venv"))


def free_ports(count):
    """`count` ports nobody listens on, below the kernel's ephemeral range (32768 and up): a port
    from bind(0) is in that range, and while a killed server is down another process's bind(0) may
    take it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    out = []
    for port in random.Random(os.getpid()).sample(range(20000, min(low, 32768)), 2000):
        with socket.socket() as s:
            try:
                s.bind((stack.HOST, port))
            except OSError:
                continue
        out.append(port)
        if len(out) == count:
            return out
    raise RuntimeError("no free ports between 20000 and the ephemeral range")


def alive(pid):
    """Whether `pid` still holds anything. A process killed with -9 empties /proc/<pid>/cmdline as it
    releases its memory, before it closes its files (a server's listening socket); only as a zombie
    (state Z) or gone has it let go of everything."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class PrivateStack:
    """MariaDB, Kafka and the MongoDB stand-in started by stack/ctl.sh with a state folder and ports of
    their own, so that the campaign can kill them without touching the shared stack. Each server is
    restarted the way an operator would, through ctl.sh."""

    def __init__(self, state, ports=None):
        self.state = Path(state)
        names = ("mysql", "kafka", "controller", "mongo")
        self.ports = ports or dict(zip(names, free_ports(len(names))))
        self.env = {**os.environ, "M2M_STATE": str(self.state), "M2M_JARS": str(JARS), "M2M_VENV": str(VENV),
                    "M2M_HOST": stack.HOST, "M2M_MYSQL_PORT": str(self.ports["mysql"]),
                    "M2M_KAFKA_PORT": str(self.ports["kafka"]),
                    "M2M_KAFKA_CONTROLLER_PORT": str(self.ports["controller"]),
                    "M2M_MONGO_PORT": str(self.ports["mongo"])}
        self.mysql = dict(stack.MYSQL, port=self.ports["mysql"])
        self.kafka = f"{stack.HOST}:{self.ports['kafka']}"
        self.mongo_uri = f"mongodb://{stack.HOST}:{self.ports['mongo']}"

    def ctl(self, *args, timeout=600):
        done = subprocess.run(["bash", str(ROOT / "stack" / "ctl.sh"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"stack/ctl.sh {' '.join(args)} (state {self.state}) failed:\n{done.stderr[-2000:]}")

    def up(self, *names, attempts=3):
        """ctl.sh up, as an operator would: a server too slow to become healthy on a loaded machine
        (the stand-in's start has taken over 120 s here) is stopped and started again."""
        for attempt in range(1, attempts + 1):
            try:
                return self.ctl("up", *names)
            except RuntimeError as e:
                if attempt == attempts:
                    raise
                print(f"faults: start {attempt} of {' '.join(names) or 'the stack'} failed, stopping and "
                      f"starting again: {str(e).strip().splitlines()[-1]}", flush=True)
                self.down(*names)

    def down(self, *names):
        self.ctl("down", *names)

    def pid(self, name):
        return int((self.state / "run" / f"{name}.pid").read_text())

    def kill(self, name):
        """kill -9 of a server; returns once it is gone."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        stack.wait_for(lambda: not alive(pid), timeout=60, what=f"{name} (pid {pid}) to die")

    def fresh(self):
        """Stops what a previous run left running in this state folder and empties it (the jars and
        venv are shared, not kept here)."""
        if self.state.exists():
            self.down()
            subprocess.run(["rm", "-rf", str(self.state)], check=True)
        self.state.mkdir(parents=True)


def die_with_parent():
    """Run in the child before exec: SIGKILL it if the campaign dies, so no daemon outlives it."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Supervised:
    """One daemon run as systemd runs a service with Restart=always and RestartSec=`restart_sec`:
    started again after every exit, whatever its status. Keeps each exit (time, status, whether the
    campaign caused it with kill(), the log's last line) so the restarts a failure needed are counted
    apart from the kills. The daemon leads a process group, which plays the service's cgroup: kill(),
    signal() and stop() reach all of it (spark-submit's JVM and the job's Python under it), and what
    is left of it after the daemon exits is killed before the restart."""

    def __init__(self, name, args, env, log_path, restart_sec=1.0):
        self.name, self.args, self.env, self.log_path, self.restart_sec = name, args, env, Path(log_path), restart_sec
        self.exits = []
        self.proc = None
        self._killed = set()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    def start(self):
        self._thread.start()
        self._started.wait(30)
        return self

    def _run(self):
        while not self._stopping.is_set():
            with open(self.log_path, "ab") as log:
                log.write(f"=== supervisor: start {len(self.exits) + 1} at {time.strftime('%H:%M:%S')}\n".encode())
                log.flush()
                # PR_SET_PDEATHSIG fires when the thread that forked exits: this thread lives as long as
                # the daemon it watches.
                try:
                    self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                 preexec_fn=die_with_parent, start_new_session=True)
                except OSError as e:  # as systemd: a start that fails is a failed start, retried
                    log.write(f"=== supervisor: cannot start: {e}\n".encode())
                    self.exits.append({"at": time.monotonic(), "status": None, "caused": False, "last_line": str(e)})
                    self._stopping.wait(self.restart_sec)
                    continue
            self._started.set()
            status = self.proc.wait()
            self._signal_group(signal.SIGKILL)
            if self._stopping.is_set():
                break
            self.exits.append({"at": time.monotonic(), "status": status, "caused": self.proc.pid in self._killed,
                               "last_line": self._last_line()})
            self._stopping.wait(self.restart_sec)

    def _last_line(self):
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines()[-20:]
                     if line and not line.startswith("=== supervisor")]
            return lines[-1][-300:] if lines else ""
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """kill -9 of the process group, counted as caused by the campaign."""
        self._killed.add(self.proc.pid)
        self._signal_group(signal.SIGKILL)

    def signal(self, sig):
        self._signal_group(sig)

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:  # the group is empty
            pass

    def restarts_since(self, t, caused=False):
        return [e for e in self.exits if e["at"] >= t and e["caused"] == caused]

    def stop(self, timeout=60):
        """SIGTERM, as systemctl stop; returns the exit status."""
        self._stopping.set()
        proc = self.proc
        if proc is None:  # never started
            return None
        if proc.poll() is None:
            self._signal_group(signal.SIGCONT)
            self._signal_group(signal.SIGTERM)
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            status = proc.wait(30)
        self._thread.join(30)
        self._signal_group(signal.SIGKILL)
        return status


def _connection_errors():
    import pymongo.errors as e

    return (e.AutoReconnect, e.ServerSelectionTimeoutError, e.ConnectionFailure, e.ExecutionTimeout)


class Writer:
    """Inserts, updates, replaces and deletes documents of `collections` at `rate` writes/s in all,
    one thread per collection (one pymongo thread alone keeps about 80 writes/s on the stand-in of a
    busy 2-core machine), each write stamped with `seq`, a counter that only increases across all of
    them. A write counts once MongoDB acknowledged it; one whose answer was lost (the server went
    away) is resolved by reading the document back when the server answers again: its `seq` there,
    or for a delete its absence, says whether it happened. The committed writes are `log` (and the
    JSON lines file `log_path`), the documents they leave are `model`. Heartbeats: every
    `heartbeat_s` the documents `heartbeat_ids` (negative _ids, never deleted) get the time of
    writing in `at_ms`, for the lag probe. `batch` writes of distinct documents go in one ordered
    bulk write, for rates one write per round trip cannot reach."""

    def __init__(self, mongo_uri, db, collections, rate, documents, log_path, seed=1, heartbeat_s=0.5, batch=1,
                 keep_log=True):
        import pymongo

        self.client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000,
                                          socketTimeoutMS=10000, retryWrites=False, retryReads=False,
                                          maxPoolSize=len(collections) + 2)
        self.db = self.client[db]
        self.collections, self.rate, self.documents = list(collections), rate, documents
        self.seed, self.batch = seed, batch
        self.model = {c: {} for c in self.collections}
        self.log = [] if keep_log else None  # in memory too, for the Kafka audit
        self.committed = {}  # op -> count
        self.log_file = open(log_path, "a")
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.heartbeat_s = heartbeat_s
        self.heartbeat_ids = []  # (collection, _id)
        self.unknown_outcomes = 0  # writes whose answer was lost, resolved by reading back
        self.stopped = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(c, k), name=f"writer-{c}", daemon=True)
                        for k, c in enumerate(self.collections)]
        self.started = self.ended = None

    @property
    def error(self):
        return "; ".join(self.errors) or None

    def _document(self, rng, i, seq, n):
        return {"_id": i, "seq": seq, "n": n, "name": f"doc {i} v{seq}",
                "sub": {"city": f"city{seq % 13}", "zip": f"{i:05d}"},
                "items": [{"sku": f"s{i}-{k}", "qty": seq + k} for k in range(rng.randint(0, 3))],
                "pad": "x" * rng.randint(20, 200)}

    def write(self, collection, planned):
        """Writes `planned` [(op, _id, seq, state, request)] of distinct _ids in one ordered bulk write
        and commits those that happened: all when MongoDB answers, and when its answer is lost, each
        one whose effect reading the document back shows."""
        from pymongo.errors import BulkWriteError

        coll = self.db[collection]
        try:
            coll.bulk_write([p[4] for p in planned], ordered=True)
            done = planned
        except _connection_errors():
            with self._lock:
                self.unknown_outcomes += len(planned)
            done = [p for p in planned if self._happened(coll, *p[:3])]
        except BulkWriteError as e:  # a write refused (none should be): what came before it happened
            raise RuntimeError(f"{collection}: a write was refused: {e.details.get('writeErrors')}") from e
        for op, i, seq, state, _ in done:
            self._commit(collection, op, i, seq, state)

    def _happened(self, coll, op, i, seq):
        while True:
            try:
                found = coll.find_one({"_id": i})
                return found is None if op == "delete" else found is not None and found.get("seq") == seq
            except _connection_errors():
                if self.stopped.is_set():
                    raise
                time.sleep(0.5)

    def _commit(self, collection, op, i, seq, state):
        if state is None:
            self.model[collection].pop(i, None)
        else:
            self.model[collection][i] = state
        entry = {"seq": seq, "c": collection, "id": i, "op": op, "t": round(time.time(), 3)}
        with self._lock:
            self.committed[op] = self.committed.get(op, 0) + 1
            if self.log is not None:
                self.log.append(entry)
            self.log_file.write(json.dumps(entry) + "\n")

    def plan(self, collection, rng, i):
        """The next write of document `i`: (op, _id, seq, the document it leaves or None, request)."""
        from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne

        current = self.model[collection].get(i)
        seq = next(self._seq)
        roll = rng.random()
        if current is None:
            doc = self._document(rng, i, seq, 0)
            return "insert", i, seq, doc, InsertOne(dict(doc))
        if roll < 0.55:
            update = {"$set": {"seq": seq, "name": f"doc {i} v{seq}", "sub.city": f"city{seq % 13}"},
                      "$inc": {"n": 1}}
            state = {**current, "seq": seq, "name": f"doc {i} v{seq}", "n": current["n"] + 1,
                     "sub": {**current["sub"], "city": f"city{seq % 13}"}}
            if rng.random() < 0.3:  # a new array: the child table's rows change
                items = [{"sku": f"s{i}-{k}", "qty": seq + k} for k in range(rng.randint(0, 3))]
                update["$set"]["items"] = items
                state["items"] = items
            return "update", i, seq, state, UpdateOne({"_id": i}, update)
        if roll < 0.75:
            doc = self._document(rng, i, seq, current["n"] + 1)
            return "replace", i, seq, doc, ReplaceOne({"_id": i}, dict(doc))
        return "delete", i, seq, None, DeleteOne({"_id": i})

    def heartbeat(self, ids=None, final=False):
        from pymongo import UpdateOne

        by_collection = {}
        for collection, i in ids or self.heartbeat_ids:
            seq = next(self._seq)
            fields = {"seq": seq, "at_ms": int(time.time() * 1000), "final": final}
            state = {"_id": i, **self.model[collection].get(i, {}), **fields}
            by_collection.setdefault(collection, []).append(
                ("heartbeat", i, seq, state, UpdateOne({"_id": i}, {"$set": fields}, upsert=True)))
        for collection, planned in by_collection.items():
            self.write(collection, planned)

    def _run(self, collection, k):
        rng = random.Random(self.seed * 1000 + k)
        rate = self.rate / len(self.collections)
        mine = [h for h in self.heartbeat_ids if h[0] == collection]
        try:
            started, n, last_heartbeat = time.monotonic(), 0, 0.0
            while not self.stopped.is_set():
                now = time.monotonic()
                if now - last_heartbeat >= self.heartbeat_s:
                    last_heartbeat = now
                    self.heartbeat(mine)
                due = started + n / rate
                if due > now:
                    self.stopped.wait(min(due - now, self.heartbeat_s))
                    continue
                if now - due > 1.0:  # behind (an outage, a busy machine): keep the rate, do not burst
                    started, n = now, 0
                ids = rng.sample(range(self.documents), self.batch)
                self.write(collection, [self.plan(collection, rng, i) for i in ids])
                n += self.batch
        except Exception as e:  # noqa: BLE001 - reported by the campaign, which stops
            self.errors.append(f"{collection}: {type(e).__name__}: {e}")

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def is_alive(self):
        return any(t.is_alive() for t in self.threads)

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(120)
        self.ended = time.monotonic()
        self.log_file.flush()

    def close(self):
        self.log_file.close()
        self.client.close()

    def total(self):
        return sum(self.committed.values())

    def achieved_rate(self):
        """Writes per second over the writing time, heartbeats left out."""
        n = self.total() - self.committed.get("heartbeat", 0)
        return round(n / (self.ended - self.started), 1) if self.started and self.ended else None


class LagProbe(threading.Thread):
    """Every `interval`, the end-to-end lag: now minus the writing time (`at_ms`) of the oldest of the
    heartbeat documents as MySQL holds them. The heartbeats sit one in each partition of each topic,
    so a stalled partition (a member stopped, a consumer not assigned) shows. None while MySQL does
    not answer."""

    def __init__(self, mysql, database, heartbeat_ids, interval=0.5):
        super().__init__(name="lag-probe", daemon=True)
        self.mysql, self.database, self.interval = mysql, database, interval
        self.by_collection = {}
        for collection, i in heartbeat_ids:
            self.by_collection.setdefault(collection, []).append(i)
        self.samples = []  # (monotonic, wall seconds, oldest at_ms seen or None)
        self.stopped = threading.Event()
        self._conn = None

    def oldest_at(self):
        import pymysql

        try:
            if self._conn is None:
                self._conn = pymysql.connect(**self.mysql, database=self.database, autocommit=True,
                                             connect_timeout=2, read_timeout=5, write_timeout=5)
            oldest = None
            with self._conn.cursor() as cur:
                for collection, ids in self.by_collection.items():
                    cur.execute(f"SELECT _id, at_ms FROM `{collection}` WHERE _id IN ({','.join(map(str, ids))})")
                    rows = dict(cur.fetchall())
                    if len(rows) < len(ids) or any(v is None for v in rows.values()):
                        return None
                    oldest = min([oldest or 2 ** 62, *map(int, rows.values())])
            return oldest
        except pymysql.err.MySQLError:
            try:
                self._conn and self._conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass
            self._conn = None
            return None

    def run(self):
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), time.time(), self.oldest_at()))
            self.stopped.wait(self.interval)

    def lag_s(self, sample):
        _, wall, at_ms = sample
        return None if at_ms is None else wall - at_ms / 1000

    def wait_recovered(self, since_wall, threshold_s, timeout):
        """Waits until MySQL holds heartbeats written after `since_wall` (wall seconds) and the lag is at
        most `threshold_s`; returns the monotonic time of that sample, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        seen = len(self.samples)
        while time.monotonic() < deadline:
            while seen < len(self.samples):
                sample = self.samples[seen]
                seen += 1
                if sample[2] is not None and sample[2] / 1000 >= since_wall and self.lag_s(sample) <= threshold_s:
                    return sample[0]
            time.sleep(self.interval / 2)
        return None

    def stop(self):
        self.stopped.set()
        self.join(30)


def heartbeat_partitions(kafka, topics, timeout=120):
    """{topic: {partition: [_ids whose events are there]}} from the start of each topic, for the
    heartbeats' negative _ids (read_committed, as apply reads)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka, "group.id": stack.unique("hb"),
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        out, assign = {}, []
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                assign.append(TopicPartition(topic, p, 0))
                out.setdefault(topic, {})[p] = []
        consumer.assign(assign)
        pending = {(tp.topic, tp.partition) for tp in assign}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                pending.discard((msg.topic(), msg.partition()))
                continue
            i = int(json.loads(json.loads(msg.key())["id"])["$numberInt"])
            if i < 0 and i not in out[msg.topic()][msg.partition()]:
                out[msg.topic()][msg.partition()].append(i)
        return out
    finally:
        consumer.close()


def audit_topics(kafka, topics_by_collection, writer_log, timeout=600):
    """Every committed event of the topics (read_committed) against the writer's log: for each
    document, the events must be the writes MongoDB acknowledged, in order, each once. Returns
    {"events", "missing", "duplicated", "reordered" (documents whose events are all there, in
    another order), "examples"}."""
    from confluent_kafka import Consumer, TopicPartition

    expected = {}
    for entry in writer_log:
        expected.setdefault((entry["c"], entry["id"]), []).append("d" if entry["op"] == "delete" else entry["seq"])
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": stack.unique("audit"),
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 52428800})
    seen, events = {}, 0
    try:
        assign = []
        for collection, topic in topics_by_collection.items():
            for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                assign.append(TopicPartition(topic, p, 0))
        consumer.assign(assign)
        collection_of = {t: c for c, t in topics_by_collection.items()}
        pending = {(tp.topic, tp.partition) for tp in assign}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not read to their ends in {timeout}s")
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    pending.discard((msg.topic(), msg.partition()))
                    continue
                events += 1
                value = json.loads(msg.value())
                i = int(json.loads(json.loads(msg.key())["id"])["$numberInt"])
                seen.setdefault((collection_of[msg.topic()], i), []).append(_event_seq(value))
    finally:
        consumer.close()
    missing = duplicated = reordered = 0
    examples = []
    for key in set(expected) | set(seen):
        want, got = expected.get(key, []), seen.get(key, [])
        if want == got:
            continue
        lost, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
        missing += sum(lost.values())
        duplicated += sum(extra.values())
        reordered += not lost and not extra
        if len(examples) < 10:
            examples.append({"document": list(key), "writer": want[-8:], "kafka": got[-8:]})
    return {"events": events, "missing": missing, "duplicated": duplicated, "reordered": reordered,
            "examples": examples}


def _event_seq(value):
    """The writer's seq an event carries; "d" for a delete, which carries none."""
    if value["op"] == "d":
        return "d"
    if value.get("updateDescription"):
        fields = json.loads(value["updateDescription"]["updatedFields"])
    else:
        fields = json.loads(value["after"])
    seq = fields.get("seq")
    return int(seq["$numberInt"] if isinstance(seq, dict) and "$numberInt" in seq else
               seq["$numberLong"] if isinstance(seq, dict) else seq)
