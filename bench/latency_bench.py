"""End-to-end latency: a write to MongoDB (pymongo insert_one) until its row is visible in MySQL,
p50/p95/p99, at fixed write rates (by default 25%, 50% and 90% of the engine's maximum), through
capture and one engine: `mongo2mysql apply` (native) or the Spark job. Both run
with the product's defaults (capture --max-batch-ms 200; apply --max-batch-ms 500), the Spark job
with `--trigger-interval '0 seconds'` (a micro-batch as soon as the last one ends: its low-latency
setting, docs/spark.md), or in Real-time Mode (`--engine spark-real-time`: `--real-time`).

The maximum is measured first, end to end, in the same pipeline (unless --max-rate gives one): the
writer writes as fast as it can for --seconds (batches of at most WRITE_BATCH documents), and the
maximum is the documents written over the time from the first write to the last row in MySQL: what
this machine carries with the writer, the stand-in, capture, Kafka, the engine and MariaDB sharing
its cores. Capture alone, with a bulk writer and no engine running (bench/capture_bench.py), reaches
more: a rate half of which the paced writer could not keep beside Spark (2026-12-03: 1,448-2,145 of
2,400 writes/s achieved).

Each written document has a new integer _id in write order and a due time on a fixed schedule; its
latency counts from that due time (documents overdue when the writer gets to them go in one
insert_many), so the writer's own delays are in the figure and the rate is the one asked for. The
MongoDB stand-in is the run's own, started empty, so every engine meets the same server. A watcher
polls MySQL every 10 ms for the ids above the highest id below which all were seen (a primary-key
range read of only the new rows), so polling costs little and adds at most its interval to a
figure. Also the peak RSS of capture and of the engine's processes.

  .stack/venv/bin/python bench/latency_bench.py --engine native --seconds 20
  .stack/venv/bin/python bench/latency_bench.py --engine spark --max-rate 3000 --fractions 0.5 --seconds 30
"""
import argparse
import json
import re
import shutil
import statistics
import subprocess
import threading
import time

import pymongo

import benchlib
from benchlib import stack
import pipeline  # noqa: E402  (tests/, on the path through benchlib)


class Watcher(threading.Thread):
    """Records when each id first shows up in `table`."""

    def __init__(self, database, table, interval=0.01):
        super().__init__(daemon=True)
        self.conn = benchlib.mysql(database)
        self.table, self.interval = table, interval
        self.seen = {}
        self.low = 0  # every id <= low has been seen
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            rows = benchlib.query_or(self.conn, f"SELECT GROUP_CONCAT(_id) FROM `{self.table}` WHERE _id > %s",
                                     (None,), (self.low,))
            now = time.monotonic()
            ids = rows[0].decode() if isinstance(rows[0], bytes) else rows[0]
            for i in ids.split(",") if ids else ():
                self.seen.setdefault(int(i), now)
            while self.low + 1 in self.seen:
                self.low += 1
            self.stopped.wait(self.interval)


WRITE_BATCH = 100


def write_at(coll, first, count, rate, until=None):
    """Inserts ids first..first+count-1, id first+k due at started + k/rate, stopping early at the
    monotonic time `until`; returns ({id: due time}, achieved rate). An open loop: when the writer
    falls behind, the documents due by then (at most WRITE_BATCH) go in one insert_many, and each keeps
    its due time as its start, so a late write counts against the pipeline, never for it."""
    written = {}
    started = time.monotonic()
    k = 0
    while k < count and (until is None or time.monotonic() < until):
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        end = min(count, k + WRITE_BATCH, max(k + 1, int((time.monotonic() - started) * rate) + 1))
        docs = []
        for j in range(k, end):
            written[first + j] = started + j / rate
            docs.append(benchlib.document(first + j, first + j, 1 + (first + j) % 3))
        if len(docs) == 1:
            coll.insert_one(docs[0])
        else:
            coll.insert_many(docs)
        k = end
    elapsed = time.monotonic() - started
    return written, len(written) / elapsed if elapsed > 0 else None


def start_engine(engine, topic, database, work, job_args=()):
    log = open(work / f"{engine}.log", "ab")
    if engine == "native":
        args = [str(benchlib.BUILD / "mongo2mysql"), "apply", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                "--topics", topic, "--group", stack.unique("g"), *benchlib.mysql_args(database)]
    else:
        args = [benchlib.PYTHON, "-m", "m2m_spark.job", "--topics", topic, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                *benchlib.mysql_args(database), "--checkpoint", str(work / "spark-checkpoint"),
                # spark-real-time: Real-time Mode with its defaults (docs/spark.md)
                *(["--real-time"] if engine == "spark-real-time" else ["--trigger-interval", "0 seconds"]), *job_args]
    return subprocess.Popen(args, env=benchlib.env(), stdout=log, stderr=subprocess.STDOUT)


PHASES = re.compile(rb"(\S+) batch (\d+): (\d+) records in (\d+) ms \(([^)]*) ms\)")


def batch_phases(engine, log):
    """The median of each phase of the Spark job's batches with records (the job's log of Spark's
    progress reports: docs/spark.md, "Latency"), in ms, and how many batches: Real-time Mode's epochs
    (their phases other than addBatch are the gap between two epochs), or the micro-batches but the
    first (the new table's, with the job's start)."""
    batches = []
    for m in PHASES.finditer(log.read_bytes()):
        real_time = m.group(1).endswith(b"-real-time")
        if real_time if engine == "spark-real-time" else not real_time and int(m.group(2)) > 0:
            phases = {"batch": int(m.group(4)), "records": int(m.group(3))}
            for item in filter(None, m.group(5).decode().split(", ")):
                name, _, ms = item.rpartition(" ")
                phases[name] = int(ms)
            batches.append(phases)
    if not batches:
        return None
    return {"batches": len(batches), **{k: statistics.median(b.get(k, 0) for b in batches) for k in batches[-1]}}


def captured_at(topic, wall_minus_monotonic):
    """{id: when capture encoded its event} (capture's ts_ms, on the monotonic clock)."""
    out = {}
    for key, value in pipeline.read_all_raw(topic):
        if key is None or value is None:
            continue
        id_json = json.loads(json.loads(key)["id"])
        number = id_json.get("$numberInt") or id_json.get("$numberLong") if isinstance(id_json, dict) else id_json
        out[int(number)] = json.loads(value)["ts_ms"] / 1000 - wall_minus_monotonic
    return out


def stages(written, captured, seen):
    """Where the latency goes: from the write's due time until capture encoded the event (the
    writer's lateness, the change stream, capture's read), then until the row shows in MySQL
    (capture's Kafka transaction, apply's fetch, batch and MySQL commit, the 10 ms polling)."""
    both = [i for i in written if i in captured and i in seen]
    split = {"to_capture": [captured[i] - written[i] for i in both],
             "capture_to_mysql": [seen[i] - captured[i] for i in both]}
    return {name: {k: round(v, 3) for k, v in benchlib.percentiles(values).items()} for name, values in split.items()}


# Far above what one pymongo thread writes here: the writer is always behind, so it writes full batches.
SATURATING_RATE = 100000


def run(engine, max_rate=None, fractions=(0.25, 0.5, 0.9), seconds=20, keep_work=False, job_args=()):
    work = stack.STATE / "bench" / stack.unique(f"latency-{engine}")
    work.mkdir(parents=True)
    # A stand-in of the run's own, started empty with room for the run's oplog: the shared one slows as
    # it fills and, at its cap, removes an entry per insert, so engines measured one after another
    # would not see the same server.
    mongo = pipeline.start_mongo_standin(work, env={"M2M_MONGO_OPLOG_MAX_BYTES": str(2 << 30)}, heap="3g")
    client = pymongo.MongoClient(mongo.uri)
    mongo_db, database, prefix = stack.unique("lat"), stack.unique("lat"), stack.unique("lat")
    # capture's name is its Kafka transactional id: two runs at once under one name fence each other.
    name = stack.unique("lat")
    conn = benchlib.mysql()
    capture = engine_proc = watcher = None
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
        coll = client[mongo_db]["lat"]
        capture = pipeline.Process(["capture", "--mongo-uri", mongo.uri, "--kafka-bootstrap",
                                    stack.KAFKA_BOOTSTRAP, "--db", mongo_db, "--collection", "lat",
                                    "--topic-prefix", prefix, "--name", name, "--snapshot", "never"],
                                   work / "capture.log", program=[str(benchlib.BUILD / "mongo2mysql")])
        capture.name = name
        rss = {"capture": benchlib.PeakRss(capture.proc.pid)}
        pipeline.wait_for_checkpoint(prefix, capture)
        engine_proc = start_engine(engine, f"{prefix}.{mongo_db}.lat", database, work, job_args)
        rss[engine] = benchlib.PeakRss(engine_proc.pid)
        watcher = Watcher(database, "lat")
        watcher.start()
        # A first document starts every consumer and creates the table; not measured.
        coll.insert_one(benchlib.document(1, 1, 1))
        stack.wait_for(lambda: 1 in watcher.seen and engine_proc.poll() is None, timeout=600,
                       what=f"the first row through {engine}")
        steps, next_id = [], 2
        # capture stamps each event with its wall clock (ts_ms); the writer's clock is monotonic.
        wall_minus_monotonic = time.time() - time.monotonic()
        if engine == "spark-real-time":
            # The job's catch-up in micro-batches applied the first row (a new table: a barrier); Real-time
            # Mode starts after it, and a second row through it makes sure its tasks run.
            stack.wait_for(lambda: b"real-time mode started" in (work / f"{engine}.log").read_bytes(), timeout=600,
                           what="Real-time Mode started")
            coll.insert_one(benchlib.document(2, 2, 1))
            stack.wait_for(lambda: 2 in watcher.seen and engine_proc.poll() is None, timeout=600,
                           what="the second row through Real-time Mode")
            next_id = 3
        saturation = None
        if max_rate is None:
            written, achieved = write_at(coll, next_id, SATURATING_RATE * seconds, SATURATING_RATE,
                                         until=time.monotonic() + seconds)
            last = next_id + len(written) - 1
            stack.wait_for(lambda: watcher.low >= last or engine_proc.poll() is not None, timeout=600,
                           what=f"{len(written)} rows written as fast as possible through {engine}")
            assert engine_proc.poll() is None, f"{engine} exited; log in {work}"
            max_rate = len(written) / (watcher.seen[last] - min(written.values()))
            saturation = {"events": len(written), "writer_per_s": round(achieved, 1),
                          "end_to_end_per_s": round(max_rate, 1)}
            next_id = last + 1
        for fraction in fractions:
            rate = max_rate * fraction
            count = max(1, round(rate * seconds))
            written, achieved = write_at(coll, next_id, count, rate)
            next_id += count
            last = next_id - 1
            stack.wait_for(lambda: watcher.low >= last or engine_proc.poll() is not None, timeout=600,
                           what=f"{count} rows at {rate:.0f}/s through {engine}")
            assert engine_proc.poll() is None, f"{engine} exited; log in {work}"
            latencies = [watcher.seen[i] - t for i, t in written.items()]
            steps.append({"fraction": fraction, "target_per_s": round(rate, 1),
                          "achieved_per_s": round(achieved, 1), "events": count,
                          **{k: round(v, 3) for k, v in benchlib.percentiles(latencies).items()},
                          "max": round(max(latencies), 3), "written": written})
        captured = captured_at(f"{prefix}.{mongo_db}.lat", wall_minus_monotonic)
        for step in steps:
            written = step.pop("written")
            step["stages"] = stages(written, captured, watcher.seen)
        peaks = {name: sampler.stop() for name, sampler in rss.items()}
        phases = batch_phases(engine, work / f"{engine}.log") if engine != "native" else None
    finally:
        if watcher:
            watcher.stopped.set()
        if engine_proc and engine_proc.poll() is None:
            engine_proc.terminate()
            try:
                engine_proc.wait(60)
            except subprocess.TimeoutExpired:
                engine_proc.kill()
        if capture:
            capture.stop()
        client.close()
        mongo.stop()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
    if keep_work:
        print(f"logs kept in {work}")
    else:
        shutil.rmtree(work)
    return {"engine": engine, "max_rate_per_s": round(max_rate, 1), **({"saturation": saturation} if saturation else {}),
            "seconds_per_rate": seconds, "job_args": list(job_args),
            "rates": steps, "peak_rss_mb": peaks, **({"median_batch_ms": phases} if phases else {})}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["native", "spark", "spark-real-time"], default="native")
    ap.add_argument("--max-rate", type=float,
                    help="the engine's maximum events/s end to end, to skip measuring it (default: measured first,"
                         " writing as fast as possible for --seconds)")
    ap.add_argument("--fractions", default="0.25,0.5,0.9")
    ap.add_argument("--seconds", type=float, default=20, help="writing time per rate")
    ap.add_argument("--job-arg", action="append", default=[], metavar="ARG",
                    help="one more argument of the Spark job, e.g. --job-arg=--max-batch-ms=50 (repeatable)")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the run's folder (the engine's and capture's logs) instead of deleting it")
    a = ap.parse_args()
    result = run(a.engine, a.max_rate, [float(f) for f in a.fractions.split(",")], a.seconds, a.keep_work, a.job_arg)
    print(benchlib.write_result(f"latency-{a.engine}", result).read_text())


if __name__ == "__main__":
    main()
