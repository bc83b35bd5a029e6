"""Memory bounded in bytes, whatever the documents' size and however long the backlog.

Large documents: capture snapshots a collection of large documents (by default 400 of 4 MiB, and 60
of 15 MiB near MongoDB's 16 MiB limit) and its peak RSS (the kernel's VmHWM) is set against its
--max-buffer-bytes; then apply loads the events into MySQL with its defaults (--max-batch-events
5000, --max-batch-bytes 64 MiB) and its peak RSS is reported too. The documents are random binary
data: incompressible, and their JSON (base64) 4/3 of their BSON.

Backlog: --backlog N events of the realistic mix (bench/benchlib.py; the first 1,000,000 repeated)
wait in a topic of 4 partitions before apply starts with its defaults and --until-caught-up; its resident memory is sampled as the
backlog drains (at each tenth of it) and its peak reported: a backlog that outgrows memory must not
show in apply's.

The collection lives in a MongoDB stand-in of the benchmark's own (its oplog small: the snapshot
starts after the inserts and needs none), so the shared stand-in's oplog is not rolled over. The
stand-in scans the whole collection for every chunk (MongoDB walks the _id index) and needs a heap
larger than the collection: its rates say nothing of MongoDB's, the peak RSS figures are capture's
and apply's own.

  .stack/venv/bin/python bench/memory_bench.py [--workload 400x4 --workload 60x15] [--bound-mib 256]
  .stack/venv/bin/python bench/memory_bench.py --workload none --backlog 10000000
"""
import argparse
import contextlib
import multiprocessing
import os
import pathlib
import tempfile
import time

import pymongo
from bson import Binary
from confluent_kafka import KafkaException

import benchlib
from benchlib import stack
import pipeline  # noqa: E402  (tests/, on the path through benchlib)
import scenarios  # noqa: E402

MIB = 1 << 20


def measure(server, workload, bound_mib, work):
    count, size_mib = workload
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=10000)
    db = client[stack.unique("mem")]
    prefix = stack.unique("memb")
    topic = f"{prefix}.{db.name}.docs"
    database = None
    try:
        per_insert = max(1, 32 // size_mib)
        for first in range(0, count, per_insert):
            db.docs.insert_many([{"_id": i, "data": Binary(os.urandom(size_mib * MIB - 64))}
                                 for i in range(first, min(first + per_insert, count))])
        # Chunks of about 16 MiB: the stand-in answers a find or getMore with every document left,
        # not at most 16 MiB as MongoDB does, and the driver refuses a reply over 48 MB.
        cap = pipeline.start_capture(work, db.name, "docs", prefix=prefix, name=stack.unique("mem"),
                                     mongo_uri=server.uri,
                                     extra=["--max-buffer-bytes", str(bound_mib * MIB),
                                            "--snapshot-chunk-size", str(max(1, 16 // size_mib))])
        rss = benchlib.PeakRss(cap.proc.pid)
        t = time.monotonic()
        try:
            pipeline.wait_for_checkpoint(prefix, cap, timeout=3600)  # the snapshot is done
            capture_s = time.monotonic() - t
            capture_peak = rss.stop().get("mongo2mysql")
        finally:
            cap.stop()
        with stack.own_mysql_database() as (database, _conn):
            group = stack.unique("memg")
            args = pipeline.apply_args(database, group, topics=[topic]) + ["--until-caught-up"]
            apply = pipeline.Process(args, work / "apply-mem.log")
            rss = benchlib.PeakRss(apply.proc.pid)
            t = time.monotonic()
            status = apply.proc.wait(1800)
            apply_s = time.monotonic() - t
            apply_peak = rss.stop().get("mongo2mysql")
            assert status == 0, f"apply exited {status}:\n{apply.log()[-3000:]}"
        total_mib = count * size_mib
        return {"documents": count, "document_mib": size_mib, "total_mib": total_mib,
                "max_buffer_mib": bound_mib,
                "capture": {"peak_rss_mib": capture_peak, "seconds": round(capture_s, 1),
                            "mib_per_s": round(total_mib / capture_s, 1)},
                "apply": {"peak_rss_mib": apply_peak, "seconds": round(apply_s, 1),
                          "mib_per_s": round(total_mib / apply_s, 1)}}
    finally:
        client.drop_database(db.name)
        client.close()
        with contextlib.suppress(KafkaException):  # not made when capture failed first (reported)
            benchlib.delete_topics([topic])


BACKLOG_CHUNK = 50000
BACKLOG_DOCUMENTS = 100000
# Encoding in Python (about 10,000 events/s per core) would take longer than apply's draining, so
# the backlog repeats its first 20 chunks (1,000,000 distinct events): apply's work per event is the
# same, only cluster times recur, which apply compares across topics only (one topic here).
BACKLOG_DISTINCT_CHUNKS = 20


def _encoded_chunk(args):
    """Records of one chunk of the backlog: the realistic mix over the same _ids as every other chunk
    (each chunk's inserts of existing documents are upserts, its updates and deletes hit documents
    it inserted), with ordinals continuing the previous chunk's."""
    prefix, chunk = args
    first = chunk * BACKLOG_CHUNK
    return [scenarios.encode(e, prefix, first + n + 1)
            for n, e in enumerate(benchlib.workload(BACKLOG_CHUNK, BACKLOG_DOCUMENTS, seed=chunk + 1))]


def _encoded_backlog(prefix, events):
    chunks = -(-events // BACKLOG_CHUNK)
    with multiprocessing.Pool(max(1, min(4, os.cpu_count() or 1))) as pool:
        distinct = pool.map(_encoded_chunk, [(prefix, c) for c in range(min(chunks, BACKLOG_DISTINCT_CHUNKS))])
    for c in range(chunks):
        yield from distinct[c % len(distinct)][:events - c * BACKLOG_CHUNK]


def backlog(events, partitions=4, samples=10):
    """Apply draining a backlog of `events` produced before it starts: peak RSS, RSS at each tenth."""
    prefix = stack.unique("memq")
    topic = f"{prefix}.test.bench"
    benchlib.make_topic(topic, partitions)
    t = time.monotonic()
    try:
        payload = benchlib.produce(_encoded_backlog(prefix, events), compression_type="lz4")
        produce_s = time.monotonic() - t
        with stack.own_mysql_database() as (database, conn), tempfile.TemporaryDirectory(dir=stack.STATE) as tmp:
            group = stack.unique("memg")
            args = pipeline.apply_args(database, group, topics=[topic]) + ["--until-caught-up"]
            apply = pipeline.Process(args, pathlib.Path(tmp) / "apply-backlog.log")
            peak = benchlib.PeakRss(apply.proc.pid)
            along = []
            t = time.monotonic()
            while apply.proc.poll() is None:
                done = int(benchlib.query_or(
                    conn, f"SELECT COALESCE(SUM(next_offset), 0) FROM `{database}`._m2m_offsets WHERE group_id = %s",
                    (0,), (group,))[0])
                if done > 0 and done >= events * len(along) / samples:
                    rss = benchlib.rss_mb(apply.proc.pid)
                    if rss is not None:
                        along.append({"applied": done, "rss_mib": rss, "s": round(time.monotonic() - t)})
                time.sleep(1)
            apply_s = time.monotonic() - t
            status = apply.proc.returncode
            apply_peak = peak.stop().get("mongo2mysql")
            assert status == 0, f"apply exited {status}:\n{apply.log()[-3000:]}"
            with conn.cursor() as cur:
                cur.execute(f"SELECT COALESCE(SUM(next_offset), 0) FROM `{database}`._m2m_offsets")
                applied = int(cur.fetchone()[0])
            assert applied == events, f"apply committed {applied} of {events} events"
        return {"events": events, "partitions": partitions, "values_mib": round(payload / MIB),
                "produce_s": round(produce_s), "apply": {"peak_rss_mib": apply_peak, "seconds": round(apply_s),
                                                         "events_per_s": round(events / apply_s), "along": along}}
    finally:
        benchlib.delete_topics([topic])


def run(workloads=((400, 4), (60, 15)), bound_mib=256, backlog_events=0):
    result = {}
    if workloads:
        with tempfile.TemporaryDirectory(dir=stack.STATE) as tmp:
            work = pathlib.Path(tmp)
            server = pipeline.start_mongo_standin(work, env={"M2M_MONGO_OPLOG_MAX_BYTES": str(16 * MIB)}, heap="4g")
            try:
                result["workloads"] = [measure(server, w, bound_mib, work) for w in workloads]
            finally:
                server.stop()
    if backlog_events:
        result["backlog"] = backlog(backlog_events)
    return result


def table(result):
    lines = []
    if result.get("workloads"):
        lines += ["| documents | total | --max-buffer-bytes | capture peak RSS | capture MiB/s | apply peak RSS "
                  "| apply MiB/s |",
                  "|---|---|---|---|---|---|---|"]
    for w in result.get("workloads", []):
        lines.append(f"| {w['documents']} x {w['document_mib']} MiB | {w['total_mib']:,} MiB "
                     f"| {w['max_buffer_mib']} MiB "
                     f"| {w['capture']['peak_rss_mib']:.0f} MiB | {w['capture']['mib_per_s']} "
                     f"| {w['apply']['peak_rss_mib']:.0f} MiB | {w['apply']['mib_per_s']} |")
    if "backlog" in result:
        b = result["backlog"]
        lines.append(f"apply draining a backlog of {b['events']:,} events ({b['values_mib']:,} MiB of values, "
                     f"{b['partitions']} partitions): peak RSS {b['apply']['peak_rss_mib']:.0f} MiB, "
                     f"{b['apply']['events_per_s']:,} events/s; RSS along the way: "
                     + ", ".join(f"{a['rss_mib']:.0f} MiB at {a['applied']:,}" for a in b["apply"]["along"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", action="append",
                    help="COUNTxMIB, e.g. 400x4 (repeatable; default 400x4 and 60x15; 'none': no large documents)")
    ap.add_argument("--bound-mib", type=int, default=256, help="capture's --max-buffer-bytes, in MiB")
    ap.add_argument("--backlog", type=int, default=0, help="events of the backlog apply drains (default 0: none; "
                    "make bench: 10,000,000, about 4 GB in Kafka)")
    args = ap.parse_args()
    workloads = ((400, 4), (60, 15)) if not args.workload else [] if args.workload == ["none"] else [
        tuple(int(x) for x in w.split("x")) for w in args.workload]
    result = run(workloads, args.bound_mib, args.backlog)
    print(benchlib.write_result("memory", result).read_text())
    print(table(result))


if __name__ == "__main__":
    main()
