"""Apply throughput: events/s from Kafka into MySQL with `mongo2mysql apply --until-caught-up`, and,
in the same run against the same MariaDB, the rate of a minimal loader that only sends multi-row
INSERT ... ON DUPLICATE KEY UPDATE of equivalent rows (bench/raw_upsert_loader). The ratio says how
much of the server's raw upsert speed apply keeps.

The events are a realistic mix (60% replace/insert with the whole document, 25% delta updates, 15%
deletes) of documents of about 0.5 KB with a sub-document and an array of 1-3 sub-documents (a child
table), spread over 4 partitions.

  M2M_BUILD=build-apply .stack/venv/bin/python bench/apply_bench.py --events 100000
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pymysql
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import scenarios  # noqa: E402
import stack  # noqa: E402


def events(count, documents, seed=1):
    rng = random.Random(seed)
    alive = set()
    for ordinal in range(1, count + 1):
        i = rng.randrange(documents)
        roll = rng.random()
        if i in alive and roll < 0.25:
            yield {"op": "update", "collection": "bench", "key": json.dumps({"_id": i}),
                   "updated": json.dumps({"n": ordinal, "address.city": f"d{ordinal % 97}"}), "removed": ["note"]}
        elif i in alive and roll < 0.40:
            alive.discard(i)
            yield {"op": "delete", "collection": "bench", "key": json.dumps({"_id": i})}
        else:
            doc = {"_id": i, "name": f"doc {i} v{ordinal}", "n": ordinal,
                   "address": {"city": f"city{ordinal % 7}", "zip": f"{i:05d}"},
                   "items": [{"sku": f"s{i}-{k}", "qty": ordinal + k} for k in range(rng.randint(1, 3))],
                   "pad": "x" * 300, "note": f"note {ordinal}"}
            yield {"op": "replace" if i in alive else "insert", "collection": "bench", "document": json.dumps(doc)}
            alive.add(i)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--documents", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=5000, help="apply --max-batch-events and the loader's batch")
    args = ap.parse_args()
    build = ROOT / os.environ.get("M2M_BUILD", "build")
    env = {**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}
    prefix = stack.unique("bench")
    topic = f"{prefix}.test.bench"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
    databases = [stack.unique("bench"), stack.unique("raw")]
    conn = pymysql.connect(**stack.MYSQL, autocommit=True)
    try:
        producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "linger.ms": 50,
                             "enable.idempotence": True})
        payload = 0
        for n, event in enumerate(events(args.events, args.documents)):
            _, key, value = scenarios.encode(event, prefix, n + 1)
            payload += len(value)
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(120) == 0
        mysql_args = ["--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
                      "--mysql-user", stack.MYSQL["user"]]

        started = time.monotonic()
        subprocess.run([str(build / "mongo2mysql"), "apply", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                        "--topics", topic, "--group", stack.unique("g"), *mysql_args,
                        "--mysql-database", databases[0], "--max-batch-events", str(args.batch),
                        "--until-caught-up"], check=True, env=env, capture_output=True)
        apply_secs = time.monotonic() - started

        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{databases[1]}`")
        loader = subprocess.run([str(build / "bench" / "raw_upsert_loader"), *mysql_args,
                                 "--mysql-database", databases[1], "--rows", str(args.events),
                                 "--batch", str(args.batch), "--documents", str(args.documents)],
                                check=True, env=env, capture_output=True, text=True)
        fields = dict(kv.split("=") for kv in loader.stdout.split())
        raw_secs = float(fields["seconds"])
    finally:
        for db in databases:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        admin.delete_topics([topic])[topic].result(60)

    apply_rate, raw_rate = args.events / apply_secs, args.events / raw_secs
    lines = [
        f"apply benchmark: {args.events} events ({payload / args.events:.0f} B average value), "
        f"{args.documents} documents, {args.partitions} partitions, batch {args.batch}, {os.cpu_count()} cores",
        "",
        "| what | seconds | events/s |",
        "|---|---|---|",
        f"| mongo2mysql apply --until-caught-up (Kafka -> MySQL, process start included) | {apply_secs:.2f} | {apply_rate:.0f} |",
        f"| raw_upsert_loader (multi-row upserts only) | {raw_secs:.2f} | {raw_rate:.0f} |",
        f"| ratio apply / raw | | {apply_rate / raw_rate:.2f} |",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / f"apply_{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
