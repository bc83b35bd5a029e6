"""Spark engine throughput: sustained events/s of the Spark job (`python -m m2m_spark.job
--until-caught-up`, local mode, a process of its own as `make spark` runs it) draining a backlog of
the same realistic mix as bench/apply_bench.py, read from the offsets its tasks store in MySQL
(`_m2m_offsets`, first commit to last, so Spark's start-up is left out). Also the peak RSS of the
driver's Python and JVM (the executors run in the driver's JVM in local mode; their Python workers
are children of it).
Its latency is measured by bench/latency_bench.py --engine spark.

  .stack/venv/bin/python bench/spark_bench.py --events 5000 --batch 1000
"""
import shutil
import subprocess

import benchlib
from benchlib import stack
import scenarios  # noqa: E402  (tests/, on the path through benchlib)


def run(events=5000, documents=1000, partitions=4, batch=1000):
    prefix = stack.unique("bs")
    topic = f"{prefix}.test.bench"
    benchlib.make_topic(topic, partitions)
    database = stack.unique("bs")
    work = stack.STATE / "bench" / prefix
    work.mkdir(parents=True)
    conn = benchlib.mysql()
    try:
        benchlib.produce(scenarios.encode(e, prefix, n + 1) for n, e in enumerate(benchlib.workload(events, documents)))
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
        with open(work / "spark.log", "wb") as log:
            job = subprocess.Popen([benchlib.PYTHON, "-m", "m2m_spark.job", "--topics", topic,
                                    "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, *benchlib.mysql_args(database),
                                    "--max-batch-events", str(batch), "--group", prefix,
                                    "--checkpoint", str(work / "checkpoint"), "--until-caught-up"],
                                   env=benchlib.env(), stdout=log, stderr=subprocess.STDOUT)
        rss = benchlib.PeakRss(job.pid)

        def progress():  # events committed by the job's tasks
            row = benchlib.query_or(conn, f"SELECT SUM(applied_events) FROM `{database}`._m2m_offsets "
                                          f"WHERE group_id = '{prefix}'", None)
            return int(row[0]) if row and row[0] is not None else 0
        try:
            rate = benchlib.sustained_rate(progress, events, events, job)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; the job's log: {work / 'spark.log'}") from None
        assert job.wait(600) == 0, f"the Spark job failed; log: {work / 'spark.log'}"
        peak = rss.stop()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
        benchlib.delete_topics([topic])
    shutil.rmtree(work)
    return {"workload": {"events": events, "documents": documents, "partitions": partitions, "batch": batch},
            "spark": rate, "peak_rss_mb": {"spark_driver_jvm": peak.get("java"),
                                           "spark_driver_python": max((v for k, v in peak.items() if k.startswith("python")), default=None)}}


def main():
    benchlib.workload_main("spark", run, __doc__, 5000, 1000, 1000, "the job's --max-batch-events (events per MySQL transaction of a task)")

if __name__ == "__main__":
    main()
