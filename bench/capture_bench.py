"""Capture throughput: events/s from a MongoDB change stream into Kafka (transactions, checkpoints
and all) against a plain libmongoc change-stream reader that reads the same events from the same
server and does nothing with them (bench/plain_change_stream_reader). Capture streams while the
writes happen, so its rate is counted from the first write to the last event in Kafka and cannot
beat the writer (writes_seconds in the result says how close it came); the reader then reads the
same events as a backlog. Also the peak RSS of capture and its snapshot rate against a plain find()
over the same collection. The stand-in's change streams are not MongoDB's: absolute rates say little.

Snapshot: capture (process start included) against one plain find() over the collection, and
against the snapshot's own queries run by a plain reader that does nothing with the documents (the
keys-only pass over _id, the count of the others, each chunk's _id range, with capture's default
chunk size and parallelism): the stand-in scans the whole collection for every _id range where
MongoDB walks the _id index, so the second ratio is capture's own cost. The phases come from
capture's log: start-up (connections, InitTransactions, the checkpoint topic, the start point's
transaction), planning, copying.

Catch-up: capture is stopped, the same number of writes happen, and capture is started again: the
rate at which it publishes the backlog from its checkpoint's resume token (process start included),
against the plain reader resumed from the same token the same way (startAfter).

  .stack/venv/bin/python bench/capture_bench.py --events 20000 [--catch-up-only | --snapshot-only [--repeat 5]]
"""
import argparse
import concurrent.futures
import datetime
import re
import subprocess
import time

import pymongo

import benchlib
from benchlib import stack
import pipeline  # noqa: E402  (tests/, on the path through benchlib)


def wait_for_events(topic, count, capture):
    """Waits until `count` records are in `topic`; returns capture's peak RSS in MB."""
    rss = benchlib.PeakRss(capture.proc.pid)
    while pipeline.topic_end_offsets(topic) < count:
        capture.assert_running()
        time.sleep(0.05)
    return rss.stop().get("mongo2mysql")


def run(events=20000, catch_up_only=False, snapshot_only=False, repeat=1):
    work = stack.STATE / "bench"
    work.mkdir(parents=True, exist_ok=True)
    client = pymongo.MongoClient(stack.MONGO_URI)
    db = client[stack.unique("bench")]
    try:
        if snapshot_only:
            insert_documents(db.c, documents(events))
            return {"workload": {"events": events},
                    "snapshot": [measure_snapshot(work, db, f"snap{i}") for i in range(repeat)]}
        return {"workload": {"events": events}, "catch_up": measure_catch_up(events, work, db)} if catch_up_only \
            else {**measure(events, work, db), "catch_up": measure_catch_up(events, work, db)}
    finally:
        for process in RUNNING:
            if process.proc.poll() is None:
                process.kill()
        client.drop_database(db.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--catch-up-only", action="store_true", help="only the restart-into-a-backlog figure")
    ap.add_argument("--snapshot-only", action="store_true", help="only the snapshot figures")
    ap.add_argument("--repeat", type=int, default=1, help="with --snapshot-only: snapshots of the same collection")
    args = ap.parse_args()
    result = run(args.events, args.catch_up_only, args.snapshot_only, args.repeat)
    print(benchlib.write_result("capture", result).read_text())


RUNNING = []


def start_capture(work, db, coll, prefix, name, extra=()):
    """A capture that the benchmark stops even when it fails half-way."""
    process = pipeline.start_capture(work, db.name, coll, prefix=prefix, name=name, extra=list(extra))
    RUNNING.append(process)
    return process


def plain_reader(db, coll, events, *start):
    """Seconds the plain reader takes for `events` events of db.coll from `start` (its flags)."""
    out = subprocess.run([str(benchlib.BUILD / "bench" / "plain_change_stream_reader"), "--mongo-uri",
                          stack.MONGO_URI, "--db", db.name, "--collection", coll, *start, "--events", str(events)],
                         capture_output=True, text=True, check=True, timeout=600)
    return float(out.stdout.split()[1])


def measure_catch_up(events, work, db):
    prefix = stack.unique("cu")
    topic = f"{prefix}.{db.name}.u"
    cap = start_capture(work, db, "u", prefix, "catchup", ["--snapshot", "never"])
    pipeline.wait_for_checkpoint(prefix, cap)
    cap.stop()
    # The plain reader starts where capture resumes: its token, or (no event or postBatchResumeToken
    # seen yet) its start time.
    checkpoint = pipeline.stream_checkpoint(prefix, "catchup")
    start = ["--start-after", checkpoint["resume_token"]] if "resume_token" in checkpoint \
        else ["--start-at", str(checkpoint["start_at"]["t"])]
    for first in range(0, events, 10000):
        db.u.insert_many([{"_id": i, "pad": "x" * 300} for i in range(first, min(first + 10000, events))])
    checkpoints = f"{prefix}.__checkpoints"
    before = len(pipeline.read_all_raw(checkpoints))  # a record per transaction
    t = time.monotonic()
    cap = start_capture(work, db, "u", prefix, "catchup", ["--snapshot", "never"])
    while pipeline.topic_end_offsets(topic) < events:
        cap.assert_running()
        time.sleep(0.02)
    capture_s = time.monotonic() - t
    cpu = benchlib.cpu_us_per_event(cap.proc.pid, 0, events)  # start-up included, as in the rate
    cap.stop()
    transactions = len(pipeline.read_all_raw(checkpoints)) - before
    plain_s = plain_reader(db, "u", events, *start)
    return {"capture_events_per_s": round(events / capture_s, 1), "capture_seconds": round(capture_s, 2),
            "capture_transactions": transactions, "capture_cpu_us_per_event": cpu, "plain_reader_resumed_events_per_s": round(events / plain_s, 1),
            "ratio": round(plain_s / capture_s, 3)}


def documents(count):
    return [{"_id": i, "name": f"customer {i}", "address": {"city": "Paris", "zip": f"{i:05d}"},
             "items": [{"sku": f"s{i % 7}", "qty": i % 5}], "pad": "x" * 300} for i in range(count)]


def insert_documents(coll, docs):
    for first in range(0, len(docs), 10000):
        coll.insert_many(docs[first:first + 10000])


# capture's defaults (capture/snapshot.h, SnapshotOptions), which the benchmark's capture runs with.
CHUNK_SIZE, PARALLELISM = 5000, 2


def snapshot_queries(coll):
    """The snapshot's own queries, as capture/snapshot.cc makes them for a collection of numeric
    _ids, by a plain reader: the keys-only pass (cut into chunks as ChunkPlanner does), the count of
    the _ids no range covers, then every chunk's range, PARALLELISM at a time. Returns the documents
    read."""
    bounds = [d["_id"] for n, d in enumerate(coll.find({"_id": {"$type": ["number"]}}, {"_id": 1}).sort("_id", 1))
              if n % CHUNK_SIZE == 0][1:]
    coll.count_documents({"_id": {"$not": {"$type": ["number"]}}})
    ranges = list(zip([None, *bounds], [*bounds, None]))

    def read(lo_hi):
        lo, hi = lo_hi
        cond = {"$type": "number", **({"$gte": lo} if lo is not None else {}), **({"$lt": hi} if hi is not None else {})}
        return sum(1 for _ in coll.find({"_id": cond}).sort("_id", 1))

    with concurrent.futures.ThreadPoolExecutor(PARALLELISM) as pool:
        return sum(pool.map(read, ranges))


def log_time(log, text):
    """The wall-clock time (epoch seconds) of the first line of capture's log holding `text`."""
    m = re.search(r"^\[([0-9-]+ [0-9:.]+)\][^\n]*" + re.escape(text), log, re.M)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() if m else None


def measure_snapshot(work, db, name):
    """Capture's snapshot of db.c against a plain find() and the snapshot's queries by a plain reader."""
    t = time.monotonic()
    plain_docs = sum(1 for _ in db.c.find())
    find_s = time.monotonic() - t
    t = time.monotonic()
    assert snapshot_queries(db.c) == plain_docs
    queries_s = time.monotonic() - t
    snap_topic_prefix = stack.unique("cs")
    started = time.time()
    cap = start_capture(work, db, "c", snap_topic_prefix, name)
    t = time.monotonic()
    snap_peak = wait_for_events(f"{snap_topic_prefix}.{db.name}.c", plain_docs, cap)
    snapshot_s = time.monotonic() - t
    snap_cpu = benchlib.cpu_us_per_event(cap.proc.pid, 0, plain_docs)
    pipeline.wait_for_checkpoint(snap_topic_prefix, cap)
    cap.stop()
    log = cap.log()
    planned, committed = log_time(log, "documents in"), log_time(log, "start point committed")
    complete = log_time(log, "snapshot complete")
    rate = plain_docs / snapshot_s
    return {"capture_docs_per_s": round(rate, 1), "find_docs_per_s": round(plain_docs / find_s, 1),
            "capture_cpu_us_per_doc": snap_cpu, "ratio": round(find_s / snapshot_s, 3),
            "same_queries_plain_docs_per_s": round(plain_docs / queries_s, 1),
            "ratio_to_same_queries": round(queries_s / snapshot_s, 3),
            "phases_s": {"start": round(committed - started, 2) if committed else None,
                         "plan": round(planned - committed, 2) if planned and committed else None,
                         "copy": round(complete - planned, 2) if complete and planned else None},
            "peak_rss_mb": snap_peak}


def measure(events, work, db):
    prefix = stack.unique("cb")
    topic = f"{prefix}.{db.name}.s"  # the streamed collection
    docs = documents(events)
    insert_documents(db.c, docs)
    snapshot = measure_snapshot(work, db, "snap")

    # Streaming: capture is streaming when the writes start and reads them as they happen (resuming
    # into a backlog after a restart is another path: slow on the stand-in, see the README); then the
    # plain reader reads the same events from the writes' start time.
    db.s.insert_one({"_id": "warm-up"})
    cap = start_capture(work, db, "s", prefix, "stream", ["--snapshot", "never"])
    pipeline.wait_for_checkpoint(prefix, cap)
    time.sleep(1)  # the plain reader starts at a whole second: keep the warm-up insert out of it
    start_at = int(time.time())
    rss = benchlib.PeakRss(cap.proc.pid)
    cpu_before = benchlib.cpu_seconds(cap.proc.pid)
    t = time.monotonic()
    for first in range(0, len(docs), 10000):
        db.s.insert_many([{**d, "_id": f"s{d['_id']}"} for d in docs[first:first + 10000]])
    write_s = time.monotonic() - t
    while pipeline.topic_end_offsets(topic) < events:
        cap.assert_running()
        time.sleep(0.02)
    capture_s = time.monotonic() - t
    stream_cpu = benchlib.cpu_us_per_event(cap.proc.pid, cpu_before, events)
    stream_peak = rss.stop().get("mongo2mysql")
    cap.stop()
    plain_s = plain_reader(db, "s", events, "--start-at", str(start_at))

    capture_rate, plain_rate = events / capture_s, events / plain_s
    snap_peak = snapshot.pop("peak_rss_mb")
    return {"workload": {"events": events},
            "streaming": {"capture_events_per_s": round(capture_rate, 1), "capture_seconds": round(capture_s, 2),
                          "writes_seconds": round(write_s, 2), "capture_cpu_us_per_event": stream_cpu,
                          "plain_reader_events_per_s": round(plain_rate, 1), "ratio": round(capture_rate / plain_rate, 3)},
            "snapshot": snapshot,
            "peak_rss_mb": {"capture_streaming": stream_peak, "capture_snapshot": snap_peak}}


if __name__ == "__main__":
    main()
