"""Spark engine benchmark: throughput (events/s, drain of a backlog with --until-caught-up) and
end-to-end latency p50/p99 (produce -> the batch holding the event committed in MySQL), streaming.

    .stack/venv/bin/python bench/spark_bench.py [--events 5000] [--batch 1000] [--rate 200]

Prints the figures and writes them to bench/results/spark-<time>.json. Needs the local stack."""
import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "spark")]

import pymysql  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import scenarios  # noqa: E402
import stack  # noqa: E402
from m2m_spark import config, job  # noqa: E402
from m2m_spark.session import build_session  # noqa: E402


def event(i, n_keys):
    doc = {"_id": i % n_keys, "name": f"user{i}", "n": i, "addr": {"city": "Paris", "zip": str(i)},
           "items": [{"sku": f"s{j}", "qty": j} for j in range(i % 3)]}
    return {"op": "insert" if i < n_keys else "replace", "collection": "bench", "document": json.dumps(doc)}


def make_topic(prefix):
    topic = f"{prefix}.test.bench"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    return topic


def database():
    name = stack.unique("bench")
    conn = pymysql.connect(**stack.MYSQL, autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}`")
    return name, conn


def run_job(spark, topic, db, batch, until_caught_up, workdir):
    args = job.parse_args(["--topics", topic, "--mysql-database", db, "--max-batch-events", str(batch)]
                          + (["--until-caught-up"] if until_caught_up else ["--trigger-interval", "0 seconds"]))
    return job.start(spark, args, config.MappingConfig(), db, str(workdir / db), {**stack.MYSQL, "database": db})


def throughput(spark, n, batch, workdir):
    prefix = stack.unique("bt")
    topic = make_topic(prefix)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for i in range(n):
        t, k, v = scenarios.encode(event(i, n // 2), prefix, i + 1)
        producer.produce(t, key=k, value=v)
    producer.flush(60)
    db, conn = database()
    start = time.monotonic()
    run_job(spark, topic, db, batch, True, workdir).awaitTermination()
    elapsed = time.monotonic() - start
    conn.cursor().execute(f"DROP DATABASE `{db}`")
    return n / elapsed, elapsed


def latency(spark, n, rate, batch, workdir):
    prefix = stack.unique("bl")
    topic = make_topic(prefix)
    db, conn = database()
    query = run_job(spark, topic, db, batch, False, workdir)
    sent, committed = {}, {}
    stop = threading.Event()

    def watch():  # the offset each commit reached, timed by polling MySQL
        c = pymysql.connect(**stack.MYSQL, database=db, autocommit=True)
        while not stop.is_set():
            try:
                with c.cursor() as cur:
                    cur.execute("SELECT offsets FROM _m2m_spark_batches")
                    row = cur.fetchone()
                if row:
                    top = json.loads(row[0]).get(topic, {}).get("0", -1)
                    now = time.monotonic()
                    for o in range(len(committed), top + 1):
                        committed[o] = now
            except pymysql.err.ProgrammingError:
                pass
            time.sleep(0.02)
    watcher = threading.Thread(target=watch)
    watcher.start()
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "linger.ms": 0})
    for i in range(n):
        t, k, v = scenarios.encode(event(i, 50), prefix, i + 1)
        sent[i] = time.monotonic()
        producer.produce(t, key=k, value=v)
        producer.poll(0)
        time.sleep(1 / rate)
    producer.flush(60)
    stack.wait_for(lambda: len(committed) >= n, timeout=600, what="every event committed")
    stop.set()
    watcher.join()
    query.stop()
    conn.cursor().execute(f"DROP DATABASE `{db}`")
    lat = sorted(committed[i] - sent[i] for i in range(n))
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=5000, help="backlog size for the throughput run")
    p.add_argument("--batch", type=int, default=1000, help="--max-batch-events of the throughput run")
    p.add_argument("--latency-events", type=int, default=600)
    p.add_argument("--rate", type=float, default=100, help="events/s produced in the latency run")
    a = p.parse_args()
    workdir = Path(stack.unique("/tmp/m2m-spark-bench"))
    spark = build_session("mongo2mysql-bench")
    eps, elapsed = throughput(spark, a.events, a.batch, workdir)
    p50, p99 = latency(spark, a.latency_events, a.rate, a.batch, workdir)
    result = {"engine": "spark", "events": a.events, "max_batch_events": a.batch, "events_per_s": round(eps, 1),
              "drain_s": round(elapsed, 2), "latency_rate_per_s": a.rate, "latency_p50_s": round(p50, 3),
              "latency_p99_s": round(p99, 3), "master": spark.sparkContext.master}
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"spark-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
