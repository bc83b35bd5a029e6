"""Apply throughput: sustained events/s from Kafka into MySQL of `mongo2mysql apply` draining a
backlog of the realistic mix (bench/benchlib.py workload), and, in the same run against the same
MariaDB, the rate of a minimal loader that only sends multi-row INSERT ... ON DUPLICATE KEY UPDATE
of equivalent rows (bench/raw_upsert_loader): the physical limit. The ratio says how much of the
server's raw upsert speed apply keeps. Also apply's peak RSS and the resulting tables' row counts and
checksums (bench/debezium_bench.py must reach the same).

  M2M_BUILD=build-apply .stack/venv/bin/python bench/apply_bench.py --events 100000
"""
import subprocess

import benchlib
from benchlib import stack
import scenarios  # noqa: E402  (tests/, on the path through benchlib)


def run(events=100000, documents=20000, partitions=4, batch=5000):
    prefix = stack.unique("bench")
    topic = f"{prefix}.test.bench"
    benchlib.make_topic(topic, partitions)
    databases = [stack.unique("bench"), stack.unique("raw")]
    conn = benchlib.mysql()
    try:
        payload = benchlib.produce(scenarios.encode(e, prefix, n + 1)
                                   for n, e in enumerate(benchlib.workload(events, documents)))
        group = stack.unique("g")
        apply = subprocess.Popen([str(benchlib.BUILD / "mongo2mysql"), "apply", "--kafka-bootstrap",
                                  stack.KAFKA_BOOTSTRAP, "--topics", topic, "--group", group,
                                  *benchlib.mysql_args(databases[0]), "--max-batch-events", str(batch),
                                  "--until-caught-up"], env=benchlib.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rss = benchlib.PeakRss(apply.pid)
        progress = lambda: int(benchlib.query_or(  # noqa: E731
            conn, f"SELECT COALESCE(SUM(next_offset), 0) FROM `{databases[0]}`._m2m_offsets WHERE group_id = %s",
            (0,), (group,))[0])
        rate = benchlib.sustained_rate(progress, events, events, apply)
        assert apply.wait(600) == 0, "apply --until-caught-up failed"
        peak = rss.stop()
        tables = {"root": benchlib.table_checksum(conn, f"`{databases[0]}`.bench", benchlib.ROOT_COLUMNS),
                  "items": benchlib.table_checksum(conn, f"`{databases[0]}`.bench_items", benchlib.ITEM_COLUMNS)}

        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{databases[1]}`")
        loader = subprocess.run([str(benchlib.BUILD / "bench" / "raw_upsert_loader"),
                                 *benchlib.mysql_args(databases[1]), "--rows", str(events), "--batch", str(batch),
                                 "--documents", str(documents)],
                                check=True, env=benchlib.env(), capture_output=True, text=True)
        raw = dict(kv.split("=") for kv in loader.stdout.split())
    finally:
        for db in databases:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        benchlib.delete_topics([topic])
    raw_rate = float(raw["rate"])
    return {"workload": {"events": events, "documents": documents, "partitions": partitions, "batch": batch,
                         "average_value_bytes": round(payload / events)},
            "apply": rate, "raw_upsert_rows_per_s": raw_rate,
            "ratio": round(rate["events_per_s"] / raw_rate, 3) if rate["events_per_s"] else None,
            "peak_rss_mb": {"apply": peak.get("mongo2mysql")}, "tables": tables}


def main():
    benchlib.workload_main("apply", run, __doc__, 100000, 20000, 5000, "apply --max-batch-events and the loader's batch")

if __name__ == "__main__":
    main()
