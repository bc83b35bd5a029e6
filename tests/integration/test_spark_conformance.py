"""The Spark engine against the native one, and through crashes: the same events must leave the same
MySQL tables (compared by per-table checksums of the rows as MySQL returns them as text)."""
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import engines
import scenarios
import stack


def checksums(database):
    """{table: (columns, sha256 of the sorted rows)} of the mapped tables (engine bookkeeping,
    the `_m2m*` tables, left out). Columns are compared by name, not position: with several
    partitions, which partition first brings a new field (and so where ALTER TABLE puts its column)
    depends on the engines' scheduling, not on the data."""
    raw = pymysql.connect(**stack.MYSQL, conv={})
    try:
        state = scenarios.table_state(raw, database)
    finally:
        raw.close()
    out = {}
    for table, (columns, rows) in state.items():
        if table.startswith("_m2m"):
            continue
        order = sorted(range(len(columns)), key=lambda i: columns[i])
        lines = sorted(repr(tuple(r[i] if r[i] is None or isinstance(r[i], bytes) else str(r[i]) for i in order))
                       for r in rows)
        out[table] = ([columns[i] for i in order], len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return out


@pytest.fixture
def second_db():
    with stack.own_mysql_database() as (name, _):
        yield name


def workload(n_events, seed=7):
    """Scenario-style events exercising the whole mapping: nested documents, child tables at two
    levels, type flips, replaces, deltas, deletes."""
    rnd = random.Random(seed)
    events, alive = [], set()
    for i in range(n_events):
        key = rnd.randrange(25)
        doc = {"_id": key, "n": rnd.choice([i, i * 1.5, str(i), {"$numberLong": str(i << 33)}, True]),
               "addr": {"city": rnd.choice(["Paris", "Rome", None]), "geo": {"lat": rnd.random()}},
               "items": [{"sku": f"s{j}", "qty": j, "parts": [{"p": k} for k in range(rnd.randrange(3))]}
                         for j in range(rnd.randrange(4))],
               "tags": [rnd.choice("abc") for _ in range(rnd.randrange(3))]}
        if rnd.random() < 0.1:
            doc["when"] = {"$date": "2024-02-29T12:34:56.789Z"}
        op = rnd.choice(["insert", "replace", "update", "delta", "delete"] if key in alive else ["insert"])
        if op == "delete":
            alive.discard(key)
            events.append({"op": "delete", "collection": "w", "key": json.dumps({"_id": key})})
        elif op == "delta":
            events.append({"op": "update", "collection": "w", "key": json.dumps({"_id": key}),
                           "updated": json.dumps({"addr.city": f"c{i}", "flag": rnd.random() < 0.5}),
                           "removed": ["n"] if rnd.random() < 0.3 else []})
        else:
            alive.add(key)
            events.append({"op": op, "collection": "w", "document": json.dumps(doc)})
    return events


def produce(events, partitions=1):
    """The events into a fresh topic, as capture would write them (keyed by _id: one document's
    events in one partition); returns the prefix and the topic."""
    prefix = stack.unique("cf")
    encoded = [scenarios.encode(e, prefix, i + 1) for i, e in enumerate(events)]
    topic = encoded[0][0]
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})  # must outlive the request
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    for t, k, v in encoded:
        producer.produce(t, key=k, value=v)
    assert producer.flush(60) == 0
    return prefix, topic


def run_for(run, database, group, workdir, engine):
    run.mysql_database, run.group, run.workdir = database, group, workdir
    workdir.mkdir(parents=True, exist_ok=True)
    engine(run)


@pytest.mark.parametrize("path", scenarios.scenario_files(), ids=lambda p: p.stem)
def test_spark_matches_native_on_scenarios(path, mysql_db, second_db, tmp_path):
    scenarios.skip_unless_for(path, "spark")
    run = scenarios.prepare(path, mysql_db[0], tmp_path)
    run_for(run, mysql_db[0], stack.unique("g"), tmp_path / "native", engines.native)
    run_for(run, second_db, stack.unique("g"), tmp_path / "spark", engines.spark)
    assert checksums(second_db) == checksums(mysql_db[0])
    raw = pymysql.connect(**stack.MYSQL, conv={})
    try:  # the scenario's own expectation too: test_scenarios.py leaves Spark's batched run to this test
        scenarios.assert_matches(run.scenario, scenarios.table_state(raw, second_db))
    finally:
        raw.close()


def test_spark_matches_native_on_a_mixed_workload(mysql_db, second_db, tmp_path):
    prefix, topic = produce(workload(400))
    run = scenarios.ScenarioRun({}, prefix, [topic], "", "", None, 50, tmp_path)
    run_for(run, mysql_db[0], stack.unique("g"), tmp_path / "native", engines.native)
    run_for(run, second_db, stack.unique("g"), tmp_path / "spark", engines.spark)
    native, spark = checksums(mysql_db[0]), checksums(second_db)
    assert set(native) == {"w", "w_items", "w_items_parts"}
    assert spark == native


def _events_applied(database, job):
    """The events the job's group has committed, by MySQL's _m2m_offsets (the core's count)."""
    conn = pymysql.connect(**stack.MYSQL, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(applied_events), 0) FROM _m2m_offsets WHERE group_id = %s", (job,))
            return int(cur.fetchone()[0])
    except pymysql.err.ProgrammingError:  # the core has not created its table yet
        return 0
    finally:
        conn.close()


def python_workers(pid):
    """PySpark's Python workers (pyspark.daemon, pyspark.worker) among a process's descendants."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError):  # gone meanwhile
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
                found.append(cmdline)
    return found


def test_spark_driver_killed_mid_stream_gives_exact_state(mysql_db, second_db, tmp_path):
    """SIGKILL the driver (a subprocess) three times while it streams, restart it on the same
    checkpoint each time: the tables equal those of an uninterrupted run (the native engine's,
    which the tests above hold equal to Spark's, and which takes a fraction of the time)."""
    prefix, topic = produce(workload(200, seed=11))
    run = scenarios.ScenarioRun({}, prefix, [topic], "", "", None, 20, tmp_path)
    run_for(run, second_db, stack.unique("g"), tmp_path / "reference", engines.native)

    database, job, checkpoint = mysql_db[0], stack.unique("job"), tmp_path / "checkpoint"
    env = {**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"],
           "PYTHONPATH": str(stack.ROOT / "spark")}
    base = [sys.executable, "-m", "m2m_spark.job", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topics", topic,
            "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
            "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, "--group", job,
            "--checkpoint", str(checkpoint), "--max-batch-events", "5", "--max-offsets-per-trigger", "20"]
    kills = 0
    for target in (40, 80, 120):  # of 200 events; each kill lands later
        log = open(tmp_path / f"job-{kills}.log", "w")
        proc = subprocess.Popen(base + ["--trigger-interval", "0 seconds"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            stack.wait_for(lambda: _events_applied(database, job) >= target or proc.poll() is not None,
                           timeout=300, what=f"{target} events applied")
            assert proc.poll() is None, (tmp_path / f"job-{kills}.log").read_text()[-3000:]
            # The executors (in the driver's JVM in local mode) hand the records to the core in the JVM:
            # no Python worker runs (docs/spark.md, "How a micro-batch is applied").
            assert not python_workers(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
        kills += 1
    assert kills == 3 and _events_applied(database, job) < 200
    # Each batch's phases, as bench/latency_bench.py reads them (job.PhaseLog)
    assert re.search(r"batch \d+: \d+ records in \d+ ms \(addBatch \d+, .*walCommit \d+ ms\)",
                     (tmp_path / "job-0.log").read_text()), (tmp_path / "job-0.log").read_text()[-3000:]
    done = subprocess.run(base + ["--until-caught-up"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert checksums(database) == checksums(second_db)


# Inserts into the new name travel on another topic than the rename (scenario 13 leaves them out
# for that reason): the Spark job orders the two topics by cluster time (docs/spark.md, "Order
# across topics"), with transactions of one event too.
RENAME_THEN_WRITE_NEW_NAME = """
events:
  - {op: insert, collection: old, document: '{"_id": 1, "items": [{"a": 1}]}'}
  - {op: rename, collection: old, to: fresh}
  - {op: insert, collection: fresh, document: '{"_id": 2, "items": [{"a": 2}]}'}
  - {op: update, collection: fresh, key: '{"_id": 1}', updated: '{"b": 5}'}
expect:
  fresh: {columns: [_id, b], rows: [["1", "5"], ["2", null]]}
  fresh_items: {columns: [_id, _idx1, a], rows: [["1", "0", "1"], ["2", "0", "2"]]}
"""


@pytest.mark.parametrize("max_batch_events,transactional", [(1, False), (None, False), (None, True)],
                         ids=["one-per-batch", "batched", "batched-in-a-transaction"])
def test_spark_orders_topics_by_cluster_time(max_batch_events, transactional, mysql_db, tmp_path):
    path = tmp_path / "rename_then_write_new_name.yaml"
    path.write_text(RENAME_THEN_WRITE_NEW_NAME)
    run = scenarios.prepare(path, mysql_db[0], tmp_path, max_batch_events, transactional)
    engines.spark(run)
    raw = pymysql.connect(**stack.MYSQL, conv={})
    try:
        scenarios.assert_matches(run.scenario, scenarios.table_state(raw, mysql_db[0]))
        with raw.cursor() as cur:  # nothing quarantined: the rename found its tables, the inserts the renamed ones
            cur.execute(f"SELECT COUNT(*) FROM `{mysql_db[0]}`._m2m_quarantine")
            assert cur.fetchone()[0] in ("0", b"0")
    finally:
        raw.close()
