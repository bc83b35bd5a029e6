"""The Spark job in Real-time Mode (--real-time; docs/spark.md, "Real-time Mode"): Spark local mode with
its JVM writer handing records to the C++ core through JNI, against the stack's Kafka and MySQL. Events
are produced as capture writes them, to topics of the test's own."""
import os
import signal
import subprocess
import sys
import time

import engines
import stack
from test_spark_conformance import checksums, workload
from test_spark_robust import Stream, insert, query



class Job:
    """The job as a user runs it: `python -m m2m_spark.job --real-time`, its log in a file."""

    def __init__(self, stream, database, tmp_path, master="local[3]"):
        pattern = stream.prefix.replace(".", "\\.") + "\\.test\\..*"
        self.args = [sys.executable, "-m", "m2m_spark.job", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                     "--topic-pattern", pattern, "--mysql-database", database, "--real-time",
                     "--real-time-epoch", "10 seconds", "--on-drop", "drop", "--group", f"rt-{database}",
                     "--checkpoint", str(tmp_path / "checkpoint"), "--master", master]
        self.env = {**os.environ, "PYTHONPATH": str(stack.ROOT / "spark"),
                    "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}
        self.log_path, self.proc = tmp_path / "job.log", None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=stack.ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.log_path.read_text(errors="replace")

    def real_time_starts(self):
        return self.text().count("real-time mode started")

    def alive(self):
        assert self.proc.poll() is None, f"the job exited ({self.proc.returncode}):\n{self.text()[-4000:]}"
        return True

    def kill(self):
        """SIGKILL to the job and the JVM it started: a crash, nothing flushed."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(60)
        self.log.close()


def rows(database, table, columns="_id, qty"):
    return query(database, f"SELECT {columns} FROM `{table}` ORDER BY _id")


def wait_rows(job, database, table, expected, timeout=120, columns="_id, qty"):
    def seen():
        job.alive()
        try:
            return rows(database, table, columns) == expected
        except Exception:  # the table is not made yet
            return False
    stack.wait_for(seen, timeout=timeout, what=f"{table} = {expected}")


def test_real_time_mode_applies_each_event_as_it_arrives_exactly_once(mysql_db, tmp_path):
    """A task slot per Kafka partition (3 topics of 1 partition at the end). Inserts, an update, a delete and a record that is no event (quarantined, the job goes on) reach
    MySQL while Real-time Mode runs, each within seconds without a micro-batch; a new collection (a
    barrier) stops Real-time Mode for a catch-up in micro-batches, and it starts again; a job killed
    mid-epoch and started again applies nothing twice."""
    database = mysql_db[0]
    stream = Stream(tmp_path)
    stream.send([insert("a", {"_id": 1, "qty": 1}), insert("a", {"_id": 2, "qty": 2}),
                 insert("b", {"_id": 1, "qty": 10})])
    job = Job(stream, database, tmp_path)
    job.start()
    try:
        # The first events of both collections are barriers: the catch-up applies them.
        wait_rows(job, database, "a", [("1", "1"), ("2", "2")], timeout=240)
        wait_rows(job, database, "b", [("1", "10")])
        stack.wait_for(lambda: job.alive() and job.real_time_starts() == 1, timeout=120,
                       what="Real-time Mode started")

        sent = time.monotonic()
        stream.send([insert("a", {"_id": 3, "qty": 3})])
        wait_rows(job, database, "a", [("1", "1"), ("2", "2"), ("3", "3")])
        first = time.monotonic() - sent
        hostile = stream.send([
            {"op": "update", "collection": "a", "key": '{"_id": 1}', "updated": '{"qty": 11}'},
            {"op": "delete", "collection": "b", "key": '{"_id": 1}'},
            ("a", b"not an event"),
            insert("a", {"_id": 4, "qty": 4}),
            insert("b", {"_id": 2, "qty": 20}),
        ])[2]
        a = [("1", "11"), ("2", "2"), ("3", "3"), ("4", "4")]
        wait_rows(job, database, "a", a)
        wait_rows(job, database, "b", [("2", "20")])
        quarantine = query(database, "SELECT topic, `partition`, `offset`, error FROM _m2m_quarantine")
        assert [(t, int(p), int(o)) for t, p, o, _ in quarantine] == [hostile[:3]]
        assert "cannot decode the event" in quarantine[0][3]
        # Still the first Real-time Mode query: nothing went through micro-batches.
        assert job.real_time_starts() == 1, job.text()[-4000:]
        # Generous for a shared 2-core machine; bench/latency_bench.py measures it.
        assert first < 10, first

        # Barriers: a drop, and a new collection (its topic found by the pattern). Real-time Mode stops
        # before each, a catch-up in micro-batches applies it, and Real-time Mode starts again.
        stream.send([{"op": "drop", "collection": "b"}, insert("c", {"_id": 1, "qty": 100})])
        stack.wait_for(lambda: job.alive() and not query(
            database, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'b'",
            (database,)), timeout=180, what="the drop of b applied")
        wait_rows(job, database, "c", [("1", "100")], timeout=180)
        assert "stopped before a barrier, collection event" in job.text(), job.text()[-4000:]
        stack.wait_for(lambda: job.alive() and job.real_time_starts() >= 2, timeout=180,
                       what="Real-time Mode started again")
        starts = job.real_time_starts()
        a.append(("5", "5"))
        stream.send([insert("a", {"_id": 5, "qty": 5})])
        wait_rows(job, database, "a", a, timeout=180)

        # A crash mid-epoch: the epoch's records are read again, and skipped.
        before = offsets(database)
        job.kill()
        a.append(("6", "6"))
        stream.send([insert("a", {"_id": 6, "qty": 6})])
        job.start()
        wait_rows(job, database, "a", a, timeout=240)
        stack.wait_for(lambda: job.alive() and job.real_time_starts() > starts, timeout=180,
                       what="Real-time Mode started after the restart")
        a.append(("7", "7"))
        stream.send([insert("a", {"_id": 7, "qty": 7})])
        wait_rows(job, database, "a", a)
        assert len(query(database, "SELECT id FROM _m2m_quarantine")) == 1
        after = offsets(database)
        topic_a = f"{stream.prefix}.test.a"
        assert after[topic_a] == (before[topic_a][0] + 2, before[topic_a][1] + 2)
        assert {t: v for t, v in after.items() if t != topic_a} == {t: v for t, v in before.items() if t != topic_a}
        assert rows(database, "c") == [("1", "100")]
    finally:
        job.kill()


def test_real_time_mode_matches_native_on_a_mixed_workload_through_a_crash(mysql_db, tmp_path):
    """The conformance workload (nested documents, child tables at two levels, type flips, replaces,
    deltas, deletes) sent in rounds while Real-time Mode runs, the job killed once mid-stream: the
    tables equal native apply's of the same events, and every event counts once. Real-time Mode's
    batches are cut by time inside long-running tasks (StreamRun), not by Spark's rounds (RangeRun)."""
    database, events = mysql_db[0], workload(600, seed=11)
    stream = Stream(tmp_path)
    stream.send(events[:1])  # the collection's first event is a barrier: the catch-up applies it
    topic = f"{stream.prefix}.test.w"
    job = Job(stream, database, tmp_path)
    job.start()
    try:
        stack.wait_for(lambda: job.alive() and job.real_time_starts() == 1, timeout=240,
                       what="Real-time Mode started")
        for start in range(1, 300, 50):
            stream.send(events[start:min(start + 50, 300)])
        stack.wait_for(lambda: job.alive() and offsets(database).get(topic, (0, 0))[0] > 150, timeout=180,
                       what="Real-time Mode applying the first rounds")
        job.kill()
        stream.send(events[300:450])  # while it is down: the restart's catch-up applies them
        job.start()
        stack.wait_for(lambda: job.alive() and job.real_time_starts() >= 2, timeout=240,
                       what="Real-time Mode started after the restart")
        for start in range(450, len(events), 50):
            stream.send(events[start:start + 50])
        last = None

        def all_applied():
            nonlocal last
            job.alive()
            last = offsets(database).get(topic)
            return last is not None and last[0] == len(events)
        try:
            stack.wait_for(all_applied, timeout=300, what=f"all {len(events)} events applied")
        except AssertionError as e:  # say where it stopped and why
            raise AssertionError(f"{e}; (next offset, applied) last seen {last}, quarantine "
                                 f"{query(database, 'SELECT `offset`, error FROM _m2m_quarantine')}") from e
        # The last 150 went through Real-time Mode, not a catch-up in micro-batches.
        assert job.real_time_starts() == 2, job.text()[-4000:]
    finally:
        job.kill()
    assert offsets(database)[topic] == (len(events), len(events))
    assert not query(database, "SELECT id FROM _m2m_quarantine")
    with stack.own_mysql_database() as (native_db, _):
        stream.run(engines.native, native_db, "native")
        native = checksums(native_db)
        assert set(native) == {"w", "w_items", "w_items_parts"}
        assert checksums(database) == native


def offsets(database):
    """{topic: (next offset, applied events)} of the job's single-partition topics."""
    return {t: (int(n), int(a)) for t, n, a in query(database, "SELECT topic, next_offset, applied_events FROM _m2m_offsets")}


def test_real_time_mode_refuses_to_leave_partitions_without_a_task(mysql_db, tmp_path):
    """Spark does not check that every partition's task fits: the job does, and says what to change."""
    database = mysql_db[0]
    stream = Stream(tmp_path)
    stream.send([insert("a", {"_id": 1, "qty": 1}), insert("b", {"_id": 1, "qty": 10})])
    job = Job(stream, database, tmp_path, master="local[1]")
    job.start()
    try:
        assert job.proc.wait(240) == 2, job.text()[-4000:]
        assert ("the topics have 2 partitions and the job 1 task slots. Give it at least 2 (--master local[2]"
                in job.text()), job.text()[-4000:]
        # Before any work.
        assert query(database, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                     (database,)) == [("0",)]
    finally:
        job.kill()
