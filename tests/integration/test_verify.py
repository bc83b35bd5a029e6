"""mongo2mysql verify against the real servers: a replica made by the real pipeline (capture, apply)
is clean; each kind of difference injected straight into MySQL is reported by document key with the
columns that differ; a difference the pipeline resolves while verify waits to recheck is not
reported."""
import datetime
import os
import re
import subprocess
import threading

from bson import Decimal128, ObjectId

import pipeline
import stack

CUSTOMER_IDS = [ObjectId() for _ in range(4)]


def load(db):
    """Documents of every common type, root columns, sub-documents, arrays of documents (child
    tables) and of scalars (JSON), keyed by integers and by ObjectIds."""
    db["orders"].insert_many([
        {"_id": i, "customer": {"name": f"c{i}", "city": "Oslo"}, "total": i * 10.25,
         "exact": Decimal128(f"{i}.10"), "placed": datetime.datetime(2024, 3, i, 10, 20, 30, 123000),
         "paid": i % 2 == 0, "tags": ["new", f"t{i}"],
         "items": [{"sku": f"a{i}", "qty": i}, {"sku": f"b{i}", "qty": 1, "opts": {"gift": True}}]}
        for i in range(1, 11)])
    db["customers"].insert_many([{"_id": oid, "name": f"n{k}", "since": 2000 + k, "score": 0.1 * k}
                                 for k, oid in enumerate(CUSTOMER_IDS)])


ENV = {**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}


def verify_args(database, db_name, *extra):
    return [str(stack.BINARY), "verify", "--mongo-uri", stack.MONGO_URI, "--db", db_name,
            "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
            "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, *[str(a) for a in extra]]


def verify(database, db_name, *extra, timeout=300):
    """Runs `mongo2mysql verify`; returns (exit status, stdout lines, stderr)."""
    result = subprocess.run(verify_args(database, db_name, *extra), capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    return result.returncode, result.stdout.splitlines(), result.stderr


def differences(lines):
    return sorted(line for line in lines if re.match(r"(missing|extra|different|unmappable|count) ", line))


class Replica:
    """MongoDB database `mongo_db` replicated into MySQL `database` by capture and apply."""

    def __init__(self, mongo_db, database, tmp_path):
        self.mongo_db, self.database, self.tmp_path = mongo_db, database, tmp_path
        self.prefix = stack.unique("verify")
        self.group = stack.unique("g")
        # One capture per collection: the local MongoDB stand-in has only collection change streams.
        self.captures = [pipeline.start_capture(tmp_path, mongo_db.name, c, prefix=self.prefix, name=c)
                         for c in ("orders", "customers")]
        self.apply = None
        for capture in self.captures:
            pipeline.wait_for_checkpoint(self.prefix, capture)

    def start_apply(self):
        self.apply = pipeline.start_apply(
            self.tmp_path, self.database, self.group, pattern=f"{re.escape(self.prefix)}\\.{self.mongo_db.name}\\..*",
            extra=["--kafka", "topic.metadata.refresh.interval.ms=1000", "--max-batch-ms", "100"])

    def stop_apply(self):
        assert self.apply.stop() == 0, self.apply.log()[-3000:]

    def wait_clean(self):
        """Until verify, without rechecking, finds MySQL equal to MongoDB: the pipeline caught up."""
        def clean():
            for capture in self.captures:
                capture.assert_running()
            status, lines, err = verify(self.database, self.mongo_db.name, "--recheck-after", 0)
            assert status in (0, 1), f"verify failed ({status}): {err}"
            return status == 0 and lines[-1]
        return stack.wait_for(clean, timeout=180, interval=1, what="the replica to catch up")

    def stop(self):
        if self.apply and self.apply.proc.poll() is None:
            self.apply.stop()
        for capture in self.captures:
            capture.stop()


def test_clean_replica_then_each_injected_difference(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    load(mongo_db)
    replica = Replica(mongo_db, database, tmp_path)
    try:
        replica.start_apply()
        # Changes that reach MySQL as stream events, not snapshot reads.
        mongo_db["orders"].update_one({"_id": 2}, {"$set": {"customer.city": "Bergen"},
                                                   "$push": {"items": {"sku": "z", "qty": 9}}})
        mongo_db["orders"].delete_one({"_id": 9})
        mongo_db["customers"].update_one({"_id": CUSTOMER_IDS[0]}, {"$set": {"score": 2.5e20}})
        summary = replica.wait_clean()
        replica.stop_apply()
        assert summary == "verify: 2 collections, 13 documents checked: clean", summary

        # Sampled and in small ranges, a correct replica is just as clean.
        status, lines, err = verify(database, mongo_db.name, "--range-size", 2, "--sample", 0.5, "--recheck-after", 0)
        assert status == 0, lines + [err]

        oid = str(CUSTOMER_IDS[1])
        with conn.cursor() as cur:
            cur.execute("DELETE FROM orders_items WHERE _id = 3")
            cur.execute("DELETE FROM orders WHERE _id = 3")                                    # missing row
            cur.execute("INSERT INTO orders (_id, customer_name) VALUES (99, 'ghost')")          # extra row
            cur.execute("UPDATE orders SET customer_city = 'Paris' WHERE _id = 4")             # changed value
            cur.execute("DELETE FROM orders_items WHERE _id = 5 AND _idx1 = 1")                # missing child row
            cur.execute("UPDATE orders_items SET qty = 7 WHERE _id = 6 AND _idx1 = 0")         # changed child value
            cur.execute("UPDATE customers SET score = 0.5 WHERE _id = %s", (oid,))             # ObjectId key
        status, lines, err = verify(database, mongo_db.name, "--recheck-after", 0)
        assert status == 1, lines + [err]
        assert differences(lines) == sorted([
            "missing orders _id=3",
            "extra orders _id=99",
            "different orders _id=4: customer_city: MongoDB Oslo, MySQL Paris",
            "different orders _id=5: orders_items (_idx1=1): missing",
            "different orders _id=6: orders_items (_idx1=0) qty: MongoDB 6, MySQL 7",
            f'different customers _id={{"$oid":"{oid}"}}: score: MongoDB 0.1, MySQL 0.5',
        ]), "\n".join(lines)
        assert lines[-1] == ("verify: 2 collections, 13 documents checked: "
                             "6 differences (4 different, 1 extra, 1 missing)"), lines[-1]

        # The same differences survive a recheck: nothing in flight resolves them.
        status, lines2, err = verify(database, mongo_db.name, "--recheck-after", 1, "--collections", "orders")
        assert status == 1, lines2 + [err]
        assert len(differences(lines2)) == 5, lines2
    finally:
        replica.stop()


def test_a_difference_the_pipeline_resolves_while_verify_waits_is_not_reported(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    load(mongo_db)
    replica = Replica(mongo_db, database, tmp_path)
    try:
        replica.start_apply()
        replica.wait_clean()
        replica.stop_apply()
        # While apply is away, MongoDB changes: MySQL lags behind by these two documents.
        mongo_db["orders"].update_one({"_id": 1}, {"$set": {"customer.city": "Tromsø"}})
        mongo_db["orders"].insert_one({"_id": 11, "customer": {"name": "late"}})
        proc = subprocess.Popen(verify_args(database, mongo_db.name, "--recheck-after", 120),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        err_lines = []
        waiting = threading.Event()

        def read_stderr():
            for line in proc.stderr:
                err_lines.append(line)
                if "checking them again" in line:
                    waiting.set()
        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        assert waiting.wait(180), "".join(err_lines)
        assert "2 keys differ" in "".join(err_lines)
        replica.start_apply()  # the pipeline catches up while verify waits
        out = proc.stdout.read()
        assert proc.wait(120) == 0, out + "".join(err_lines)
        assert out.splitlines()[-1] == ("verify: 2 collections, 15 documents checked: clean; "
                                        "2 resolved while rechecking"), out
    finally:
        replica.stop()


def test_errors_name_what_is_wrong(mongo_db, mysql_db):
    database, conn = mysql_db
    mongo_db["orders"].insert_one({"_id": 1})
    status, lines, err = verify(database, mongo_db.name, "--collections", "nosuch")
    assert status == 2 and "unknown collection nosuch" in err, err
    status, lines, err = verify(database, mongo_db.name + "_none")
    assert status == 2 and "nothing to compare" in err, err
    status, lines, err = verify(database, mongo_db.name, "--mysql-port", 1)
    assert status == 3 and "cannot connect to MySQL at 127.0.0.1:1" in err, err
    # Never replicated: every document is missing.
    status, lines, err = verify(database, mongo_db.name, "--recheck-after", 0)
    assert status == 1 and differences(lines) == ["missing orders _id=1"], lines + [err]
