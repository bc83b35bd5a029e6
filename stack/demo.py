"""The demo: MongoDB changes flowing into MySQL on the local stack, end to end.

Loads a shop into MongoDB (customers with nested addresses, products with varied attributes, orders
with arrays of line items), starts capture (one per collection: the local MongoDB stand-in has only
collection-level change streams) and the native apply engine (or the Spark job with --engine spark),
keeps a workload of inserts, updates and deletes going with live progress, waits until MySQL has
caught up, runs `mongo2mysql verify` (every document against its rows) and prints a few MySQL
queries.

  make demo                      # about 2 minutes
  make demo DEMO_ARGS=--short    # a smaller shop, a shorter workload (the test suite runs this)
"""
import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pipeline  # noqa: E402
import stack  # noqa: E402

COLLECTIONS = ("customers", "products", "orders")
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Prague"]


def make_shop(rng, customers, products, orders):
    def customer(i):
        return {"_id": i, "name": f"Customer {i}", "email": f"c{i}@example.com",
                "address": {"street": f"{rng.randint(1, 200)} Main St", "city": rng.choice(CITIES),
                            "zip": f"{rng.randint(10000, 99999)}"},
                "tags": rng.sample(["vip", "newsletter", "b2b", "mobile"], rng.randint(0, 2))}

    def product(i):
        doc = {"_id": f"P{i:05d}", "title": f"Product {i}", "price": round(rng.uniform(1, 500), 2)}
        # Varied attributes: each kind of product has fields of its own, as real catalogues do.
        kind = rng.choice(["book", "shirt", "laptop"])
        doc.update({"book": {"pages": rng.randint(50, 900), "author": f"Author {i % 97}"},
                    "shirt": {"size": rng.choice("SMLX"), "color": rng.choice(["red", "blue"])},
                    "laptop": {"ram_gb": rng.choice([8, 16, 32]), "ssd_gb": rng.choice([256, 512])}}[kind])
        doc["kind"] = kind
        return doc

    def order(i):
        items = [{"sku": f"P{rng.randrange(products):05d}", "qty": rng.randint(1, 4),
                  "price": round(rng.uniform(1, 500), 2)} for _ in range(rng.randint(1, 4))]
        return {"_id": i, "customer_id": rng.randrange(customers), "status": "placed", "items": items,
                "total": round(sum(x["qty"] * x["price"] for x in items), 2)}

    return ([customer(i) for i in range(customers)], [product(i) for i in range(products)],
            [order(i) for i in range(orders)])


def workload_step(rng, db, next_order, customers):
    """One random change: new orders mostly, some status changes, address moves, cancellations."""
    roll = rng.random()
    if roll < 0.5:
        items = [{"sku": f"P{rng.randrange(100):05d}", "qty": rng.randint(1, 3), "price": 9.99}]
        db.orders.insert_one({"_id": next_order, "customer_id": rng.randrange(customers), "status": "placed",
                              "items": items, "total": round(9.99 * items[0]["qty"], 2)})
        return next_order + 1
    if roll < 0.75:
        db.orders.update_one({"_id": rng.randrange(next_order)}, {"$set": {"status": "shipped"}})
    elif roll < 0.9:
        db.customers.update_one({"_id": rng.randrange(customers)}, {"$set": {"address.city": rng.choice(CITIES)}})
    else:
        db.orders.delete_one({"_id": rng.randrange(next_order)})
    return next_order


def mysql_counts(conn, database):
    with conn.cursor() as cur:
        out = {}
        for table in COLLECTIONS:
            try:
                cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
                out[table] = cur.fetchone()[0]
            except pymysql.err.ProgrammingError:
                out[table] = 0
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="a smaller shop and a 10-second workload")
    ap.add_argument("--seconds", type=int, help="how long the workload runs (default 40, --short 10)")
    ap.add_argument("--engine", choices=["native", "spark"], default="native", help="the apply engine")
    ap.add_argument("--database", default="shop_demo",
                    help="MongoDB and MySQL database of the demo, made anew and left for you to explore")
    args = ap.parse_args()
    customers, products, orders = (500, 200, 2000) if args.short else (10000, 2000, 30000)
    seconds = args.seconds or (10 if args.short else 40)
    rng = random.Random(42)
    work = stack.STATE / "demo"
    work.mkdir(parents=True, exist_ok=True)

    mongo = pymongo.MongoClient(stack.MONGO_URI)
    database = args.database
    mongo.drop_database(database)
    db = mongo[database]
    prefix = stack.unique("demo")  # fresh topics and checkpoints: every run starts with a snapshot
    print(f"== loading the shop into MongoDB database {database}: {customers} customers, {products} products, "
          f"{orders} orders")
    for coll, docs in zip(COLLECTIONS, make_shop(rng, customers, products, orders)):
        for start in range(0, len(docs), 5000):
            db[coll].insert_many(docs[start:start + 5000])

    conn = pymysql.connect(**stack.MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}`")
    processes = []
    try:
        print(f"== capture (snapshot, then change streams) into Kafka topics {prefix}.{database}.*")
        for coll in COLLECTIONS:
            processes.append(pipeline.start_capture(work, database, coll, prefix=prefix, name=coll))
        topics = [f"{prefix}.{database}.{coll}" for coll in COLLECTIONS]
        if args.engine == "native":
            print(f"== apply (native engine) into MySQL database {database}")
            # Topics capture has not made yet are picked up within a second, not at the default 5 minutes.
            processes.append(pipeline.start_apply(work, database, prefix, topics=topics, extra=[
                "--kafka", "topic.metadata.refresh.interval.ms=1000"]))
        else:
            print(f"== the Spark job (local mode) into MySQL database {database}")
            processes.append(pipeline.Process(
                ["-m", "m2m_spark.job", "--topics", ",".join(topics), "--mysql-database", database,
                 "--group", prefix, "--checkpoint", work / "spark" / prefix, "--trigger-interval", "2 seconds"],
                work / "spark.log", env={"PYTHONPATH": str(ROOT / "spark")}, program=[sys.executable]))

        started = time.monotonic()
        next_order, changes = orders, 0
        last_report = started
        print(f"== workload: {seconds} s of inserts, updates and deletes")
        while time.monotonic() - started < seconds:
            next_order = workload_step(rng, db, next_order, customers)
            changes += 1
            if time.monotonic() - last_report >= 2:
                for p in processes:
                    p.assert_running()
                counts = mysql_counts(conn, database)
                source = {c: db[c].estimated_document_count() for c in COLLECTIONS}
                lag = sum(max(source[c] - counts[c], 0) for c in COLLECTIONS)
                print(f"   {time.monotonic() - started:5.0f} s  {changes / (time.monotonic() - started):6.0f} "
                      f"changes/s  MySQL rows {sum(counts.values()):7d}  behind MongoDB by {lag} documents",
                      flush=True)
                last_report = time.monotonic()

        print("== waiting for MySQL to catch up")
        db.orders.insert_one({"_id": "sentinel", "status": "demo-end", "items": [], "total": 0})

        def caught_up():
            for p in processes:
                p.assert_running()
            return mysql_counts(conn, database) == {c: db[c].count_documents({}) for c in COLLECTIONS}
        stack.wait_for(caught_up, timeout=600, interval=1, what="MySQL to catch up with MongoDB")

        print("== MongoDB and MySQL side by side")
        counts = mysql_counts(conn, database)
        for coll in COLLECTIONS:
            print(f"   {coll:10s} MongoDB {db[coll].count_documents({}):7d}   MySQL {counts[coll]:7d}")
        print("== mongo2mysql verify: every document against its row and child rows in MySQL")
        verify = subprocess.run(
            [str(stack.BINARY), "verify", "--mongo-uri", stack.MONGO_URI, "--db", database,
             "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
             "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, "--recheck-after", "5"],
            capture_output=True, text=True, env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
        for line in verify.stdout.splitlines():
            print("   " + line)
        if verify.returncode != 0:
            raise SystemExit(f"verify exited {verify.returncode}: {verify.stderr.strip()}")
        sample = db.customers.find_one({"_id": 7})
        with conn.cursor() as cur:
            cur.execute(f"SELECT name, address_city FROM `{database}`.customers WHERE _id = 7")
            row = cur.fetchone()
            assert row == (sample["name"], sample["address"]["city"]), (row, sample)
            print(f"   customer 7: MongoDB {sample['name']}, {sample['address']['city']}  MySQL {row[0]}, {row[1]}")
            queries = [
                ("orders and revenue per city",
                 f"SELECT c.address_city, COUNT(*), ROUND(SUM(o.total), 2) FROM `{database}`.orders o "
                 f"JOIN `{database}`.customers c ON c._id = o.customer_id GROUP BY c.address_city "
                 f"ORDER BY 3 DESC LIMIT 5"),
                ("best-selling products (from the orders_items child table)",
                 f"SELECT i.sku, SUM(i.qty) FROM `{database}`.orders_items i GROUP BY i.sku ORDER BY 2 DESC LIMIT 3"),
                ("orders by status", f"SELECT status, COUNT(*) FROM `{database}`.orders GROUP BY status ORDER BY 2 DESC"),
            ]
            for title, sql in queries:
                print(f"== MySQL: {title}\n   {sql}")
                cur.execute(sql)
                for r in cur.fetchall():
                    print("   " + "  ".join(str(v) for v in r))
        print(f"== done: {changes} changes during the workload reached MySQL; logs in {work}")
        print(f"   explore: mariadb -h {stack.HOST} -P {stack.MYSQL['port']} -u {stack.MYSQL['user']} "
              f"-p{stack.MYSQL['password']} {database}")
    finally:
        for p in processes:
            p.stop()
        conn.close()


if __name__ == "__main__":
    main()
