"""Memory with large documents: capture snapshots a collection of large documents (by default 400
of 4 MiB, and 60 of 15 MiB near MongoDB's 16 MiB limit) and its peak RSS (the kernel's VmHWM) is
set against its --max-buffer-bytes; then apply loads the events into MySQL and its peak RSS is
reported too (apply's batches are bounded in events, --max-batch-events 5000, not yet in bytes).
The documents are random binary data: incompressible, and their JSON (base64) 4/3 of their BSON.

The collection lives in a MongoDB stand-in of the benchmark's own (its oplog small: the snapshot
starts after the inserts and needs none), so the shared stand-in's oplog is not rolled over. The
stand-in scans the whole collection for every chunk (MongoDB walks the _id index) and needs a heap
larger than the collection: its rates say nothing of MongoDB's, the peak RSS figures are capture's
and apply's own.

  .stack/venv/bin/python bench/memory_bench.py [--workload 400x4 --workload 60x15] [--bound-mib 256]
"""
import argparse
import contextlib
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


def run(workloads=((400, 4), (60, 15)), bound_mib=256):
    with tempfile.TemporaryDirectory(dir=stack.STATE) as tmp:
        work = pathlib.Path(tmp)
        server = pipeline.start_mongo_standin(work, env={"M2M_MONGO_OPLOG_MAX_BYTES": str(16 * MIB)}, heap="4g")
        try:
            return {"workloads": [measure(server, w, bound_mib, work) for w in workloads]}
        finally:
            server.stop()


def table(result):
    lines = ["| documents | total | --max-buffer-bytes | capture peak RSS | capture MiB/s | apply peak RSS "
             "| apply MiB/s |",
             "|---|---|---|---|---|---|---|"]
    for w in result["workloads"]:
        lines.append(f"| {w['documents']} x {w['document_mib']} MiB | {w['total_mib']:,} MiB "
                     f"| {w['max_buffer_mib']} MiB "
                     f"| {w['capture']['peak_rss_mib']:.0f} MiB | {w['capture']['mib_per_s']} "
                     f"| {w['apply']['peak_rss_mib']:.0f} MiB | {w['apply']['mib_per_s']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", action="append", help="COUNTxMIB, e.g. 400x4 (repeatable)")
    ap.add_argument("--bound-mib", type=int, default=256, help="capture's --max-buffer-bytes, in MiB")
    args = ap.parse_args()
    workloads = [tuple(int(x) for x in w.split("x")) for w in args.workload] if args.workload else ((400, 4), (60, 15))
    result = run(workloads, args.bound_mib)
    print(benchlib.write_result("memory", result).read_text())
    print(table(result))


if __name__ == "__main__":
    main()
