"""Capture throughput: events/s from a MongoDB change stream into Kafka (transactions, checkpoints
and all) against a plain libmongoc change-stream reader that reads the same events from the same
server and does nothing with them (bench/plain_change_stream_reader). The ratio is the figure: the
stand-in's change streams are slow and their cost grows with the oplog, so absolute rates say little.
Also the peak RSS of capture and its snapshot rate against a plain find() over the same collection.

  .stack/venv/bin/python bench/capture_bench.py --events 20000
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pymongo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pipeline  # noqa: E402
import stack  # noqa: E402


def peak_rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def wait_for_events(topic, count, capture):
    peak = 0.0
    while pipeline.topic_end_offsets(topic) < count:
        capture.assert_running()
        peak = max(peak, peak_rss_mb(capture.proc.pid))
        time.sleep(0.05)
    return max(peak, peak_rss_mb(capture.proc.pid))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    build = ROOT / os.environ.get("M2M_BUILD", "build")
    work = ROOT / ".stack" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    client = pymongo.MongoClient(stack.MONGO_URI)
    db = client[stack.unique("bench")]
    try:
        measure(args, build, work, client, db)
    finally:
        for process in RUNNING:
            if process.proc.poll() is None:
                process.kill()
        client.drop_database(db.name)


RUNNING = []


def start(work, db, coll, prefix, name, extra=()):
    """A capture that the benchmark stops even when it fails half-way."""
    process = pipeline.start_capture(work, db.name, coll, prefix=prefix, name=name, extra=list(extra))
    RUNNING.append(process)
    return process


def measure(args, build, work, client, db):
    prefix = stack.unique("cb")
    topic = f"{prefix}.{db.name}.c"
    docs = [{"_id": i, "name": f"customer {i}", "address": {"city": "Paris", "zip": f"{i:05d}"},
             "items": [{"sku": f"s{i % 7}", "qty": i % 5}], "pad": "x" * 300} for i in range(args.events)]

    # Snapshot: capture copies the collection; the plain reference is one find() over it.
    for start in range(0, len(docs), 10000):
        db.c.insert_many(docs[start:start + 10000])
    t = time.monotonic()
    plain_docs = sum(1 for _ in db.c.find())
    find_s = time.monotonic() - t
    snap_topic_prefix = stack.unique("cs")
    cap = start(work, db, "c", snap_topic_prefix, "snap")
    t = time.monotonic()
    snap_peak = wait_for_events(f"{snap_topic_prefix}.{db.name}.c", plain_docs, cap)
    snapshot_s = time.monotonic() - t
    cap.stop()

    # Streaming: capture records its start point, is stopped, the writes happen, and then capture
    # and the plain reader each read the same events from that point.
    db.s.insert_one({"_id": "warm-up"})
    cap = start(work, db, "s", prefix, "stream", ["--snapshot", "never"])
    pipeline.wait_for_checkpoint(prefix, cap)
    cap.stop()
    time.sleep(1)  # the plain reader starts at a whole second: keep the warm-up insert out of it
    start_at = int(time.time())
    for start in range(0, len(docs), 10000):
        db.s.insert_many([{**d, "_id": f"s{d['_id']}"} for d in docs[start:start + 10000]])
    t = time.monotonic()
    out = subprocess.run([str(build / "bench" / "plain_change_stream_reader"), "--mongo-uri", stack.MONGO_URI, "--db", db.name,
                          "--collection", "s", "--start-at", str(start_at), "--events", str(args.events)],
                         capture_output=True, text=True, check=True)
    plain_s = float(out.stdout.split()[1])
    cap = start(work, db, "s", prefix, "stream", ["--snapshot", "never"])
    t = time.monotonic()
    stream_peak = wait_for_events(topic, args.events, cap)
    capture_s = time.monotonic() - t
    cap.stop()

    rows = [
        ("plain change-stream reader (libmongoc, no output)", plain_s, args.events / plain_s),
        ("mongo2mysql capture, streaming (Kafka transactions, process start included)", capture_s,
         args.events / capture_s),
        ("ratio capture / plain reader", None, (args.events / capture_s) / (args.events / plain_s)),
        ("plain find() over the collection (pymongo)", find_s, plain_docs / find_s),
        ("mongo2mysql capture, snapshot (process start included)", snapshot_s, plain_docs / snapshot_s),
        ("ratio snapshot / find()", None, (plain_docs / snapshot_s) / (plain_docs / find_s)),
    ]
    lines = [f"capture benchmark: {args.events} events of ~0.5 KB documents, MongoDB stand-in, {os.cpu_count()} cores",
             "", "| what | seconds | events/s |", "|---|---|---|"]
    for what, secs, rate in rows:
        lines.append(f"| {what} | | {rate:.2f} |" if secs is None else f"| {what} | {secs:.2f} | {rate:.0f} |")
    lines += ["", f"peak RSS of capture: {stream_peak:.0f} MB streaming, {snap_peak:.0f} MB during the snapshot"]
    report = "\n".join(lines)
    print(report)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"capture_{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
