"""What every benchmark shares: the workload, the machine and versions a figure was measured on,
peak RSS of a process tree, sustained rates read from an engine's own progress, percentiles, and
the JSON each benchmark writes under bench/results/ for bench/run.py's table."""
import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / os.environ.get("M2M_BUILD", "build")
PYTHON = sys.executable


def workload(count, documents, seed=1):
    """The realistic mix as scenario events (tests/scenarios.py): 60% insert/replace of the whole
    document, 25% delta updates, 15% deletes, of about 0.5 KB documents with a sub-document and an
    array of 1-3 sub-documents (a child table). Keys are drawn from `documents` ids."""
    rng = random.Random(seed)
    alive = set()
    for ordinal in range(1, count + 1):
        i = rng.randrange(documents)
        roll = rng.random()
        if i in alive and roll < 0.25:
            yield {"op": "update", "collection": "bench", "key": json.dumps({"_id": i}),
                   "updated": json.dumps({"n": ordinal, "address.city": f"d{ordinal % 97}"}), "removed": ["note"]}
        elif i in alive and roll < 0.40:
            alive.discard(i)
            yield {"op": "delete", "collection": "bench", "key": json.dumps({"_id": i})}
        else:
            yield {"op": "replace" if i in alive else "insert", "collection": "bench",
                   "document": json.dumps(document(i, ordinal, rng.randint(1, 3)))}
            alive.add(i)


def document(i, ordinal, items):
    return {"_id": i, "name": f"doc {i} v{ordinal}", "n": ordinal,
            "address": {"city": f"city{ordinal % 7}", "zip": f"{i:05d}"},
            "items": [{"sku": f"s{i}-{k}", "qty": ordinal + k} for k in range(items)],
            "pad": "x" * 300, "note": f"note {ordinal}"}


# The workload's tables as apply maps them (docs/mapping.md) and their columns, for checksums.
ROOT_COLUMNS = ["_id", "name", "n", "address_city", "address_zip", "pad", "note"]
ITEM_COLUMNS = ["_id", "_idx1", "sku", "qty"]


def table_checksum(conn, table, columns):
    """(rows, checksum) of a table over `columns` compared as text, so that two writers that chose
    different column types for the same values agree."""
    cells = ",".join(f"IFNULL(CAST(`{c}` AS CHAR), '\\\\N')" for c in columns)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {cells}))), 0) FROM {table}")
        count, crc = cur.fetchone()
    return int(count), int(crc)


def mysql(database=None):
    import pymysql

    return pymysql.connect(**stack.MYSQL, database=database, autocommit=True)


def percentiles(values, points=(50, 95, 99)):
    """{"p50": v, ...} by nearest rank; empty input gives an empty dict."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{p}": ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] for p in points}


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def _hwm_kb(pid):
    """(command name, peak resident set in KB) of a live process, or None."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return name, int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def rss_mb(pid):
    """Resident memory of a live process in MB (VmRSS), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def cpu_seconds(pid):
    """CPU time (user + system, every thread) a live process has used so far, in seconds, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_us_per_event(pid, since, events):
    """Microseconds of CPU per event that `pid` spent since it had used `since` seconds of it."""
    now = cpu_seconds(pid)
    return round((now - since) * 1e6 / events, 1) if now is not None and since is not None and events else None


class PeakRss:
    """Samples a process and its descendants (a Spark job's Python and its JVM) until stop(), and
    keeps each process's peak RSS (the kernel's VmHWM, so a peak between samples still counts).
    stop() returns {command name: MB}, the largest process per name."""

    def __init__(self, pid, interval=0.2):
        self.pid, self.interval = pid, interval
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        for p in _descendants(self.pid):
            seen = _hwm_kb(p)
            if seen:
                self.peaks[p] = max(self.peaks.get(p, seen), seen, key=lambda s: s[1])

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self):
        self._sample()
        self._stop.set()
        self._thread.join()
        out = {}
        for name, kb in self.peaks.values():
            out[name] = max(out.get(name, 0), round(kb / 1024, 1))
        return out


def sustained_rate(progress, total, events, process=None, timeout=1800, interval=0.1):
    """Polls progress() (units done, the engine's own committed Kafka offsets) until it reaches
    `total` and returns the steady rate in events/s: from the first commit seen to the last, so that
    process and JVM start-up and the first batch's fill are left out for every engine alike. With
    `process`, also its CPU microseconds per event over the same interval."""
    first, cpu_at_first = None, None
    deadline = time.monotonic() + timeout
    while True:
        done, now = progress(), time.monotonic()
        if first is None and done > 0:
            first = (now, done)
            cpu_at_first = cpu_seconds(process.pid) if process is not None else None
        if done >= total:
            break
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} at {done}/{total}")
        if now > deadline:
            raise TimeoutError(f"{done}/{total} after {timeout}s")
        time.sleep(interval)
    seconds = now - first[0]
    measured = events * (total - first[1]) / total
    out = {"events_per_s": round(measured / seconds, 1) if seconds > 0 else None,
           "measured_events": round(measured), "seconds": round(seconds, 2)}
    if process is not None:
        out["cpu_us_per_event"] = cpu_us_per_event(process.pid, cpu_at_first, measured)
    return out


def machine(mysql_server=None):
    """Where and with what a figure was measured; `mysql_server` (pymysql.connect's keyword
    arguments) is the server whose version is reported, by default the local stack's."""
    def run(*cmd):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return done.stdout + done.stderr
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    jars = stack.STATE / "jars"

    def jar_version(folder, artifact):
        found = sorted((jars / folder).glob(f"{artifact}-[0-9]*.jar"))
        return found[0].name[len(artifact) + 1:-4] if found else None
    try:
        import pymysql

        with pymysql.connect(**(mysql_server or stack.MYSQL), connect_timeout=10).cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = cur.fetchone()[0]
    except Exception:  # noqa: BLE001 - the table still says where it ran
        mariadb = None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "cpu": cpu.group(1) if cpu else platform.machine(), "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1), "kernel": platform.release(),
        "commit": run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip(),
        "versions": {
            "mariadb": mariadb, "kafka": jar_version("kafka", "kafka_2.13"),
            # The one our binaries link, not the Python client's bundled copy.
            "librdkafka": run("pkg-config", "--modversion", "rdkafka").strip(),
            "mongodb_stand_in": "mongo-java-server " + str(jar_version("mongo", "mongo-java-server")),
            "java": (re.search(r'version "([^"]+)"', run("java", "-version")) or [None, None])[1],
            "python": platform.python_version(), "spark": _pyspark_version(),
            "debezium_jdbc": jar_version("debezium", "debezium-connector-jdbc"),
        },
    }


def _pyspark_version():
    try:
        import pyspark
        return pyspark.__version__
    except ImportError:
        return None


def write_result(name, result):
    """Writes bench/results/<name>-<time>.json (with the machine) and returns its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2) + "\n")
    return path


def make_topic(name, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(60)


def delete_topics(names):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for future in admin.delete_topics(list(names)).values():
        future.result(60)


def produce(records, **config):
    """Sends (topic, key, value) records, idempotent, waiting for all; returns the value bytes sent.
    `config`: more producer settings (dots as underscores: compression_type="lz4")."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "linger.ms": 50, "enable.idempotence": True,
                         **{k.replace("_", "."): v for k, v in config.items()}})
    sent = 0
    for topic, key, value in records:
        sent += len(value or b"")
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0, "records left unsent"
    return sent


def mysql_args(database):
    return ["--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
            "--mysql-user", stack.MYSQL["user"], "--mysql-database", database]


def env():
    """The environment our processes run in: the MySQL password never goes on a command line."""
    return {**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"], "PYTHONPATH": str(ROOT / "spark")}


def query_or(conn, sql, default, args=None):
    """The first row of a query, or `default` while its table does not exist yet."""
    import pymysql

    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone() or default
    except pymysql.err.ProgrammingError:
        return default


def workload_main(name, run, doc, events, documents, batch, batch_help):
    """The command line of a benchmark that drains the workload (`run(events, documents, partitions,
    batch)`): runs it once, writes and prints its JSON."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=events)
    ap.add_argument("--documents", type=int, default=documents)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=batch, help=batch_help)
    a = ap.parse_args()
    print(write_result(name, run(a.events, a.documents, a.partitions, a.batch)).read_text())
