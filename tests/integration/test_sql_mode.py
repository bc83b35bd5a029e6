"""The SQL apply and verify write means the same under any server default sql_mode. A DBA may set
NO_BACKSLASH_ESCAPES (a backslash no longer escapes the quote after it, so a value could end its
literal and append statements: the connections allow several per query) or ANSI_QUOTES globally; the
shared MariaDB must not be changed, so the test starts a MariaDB of its own with that default, and
replicates documents whose _id is made to break out of a backslash-escaped literal."""
import getpass
import json
import shutil
import socket
import subprocess

import pymysql
import pytest
from confluent_kafka import Producer

import pipeline
import scenarios
import stack
from test_apply import make_topic, topics  # noqa: F401

HOSTILE_MODE = "NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_TRANS_TABLES"


@pytest.fixture
def private_mariadb(tmp_path):
    """A MariaDB server of the test's own, default sql_mode HOSTILE_MODE, with the stack's account;
    yields its port and stops it afterwards."""
    data = tmp_path / "mariadb"
    subprocess.run([shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db", "--no-defaults",
                    f"--datadir={data}", f"--user={getpass.getuser()}", "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, capture_output=True, timeout=300)
    with socket.socket() as s:
        s.bind((stack.HOST, 0))
        port = s.getsockname()[1]
    server = pipeline.Process(
        ["--no-defaults", f"--datadir={data}", f"--user={getpass.getuser()}", f"--port={port}",
         f"--bind-address={stack.HOST}", f"--socket={tmp_path / 'mariadb.sock'}", f"--pid-file={tmp_path / 'mariadb.pid'}",
         "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--skip-log-bin", f"--sql-mode={HOSTILE_MODE}"],
        tmp_path / "mariadb.log", program=[shutil.which("mariadbd") or "/usr/sbin/mariadbd"])

    def connect():
        server.assert_running()
        try:
            return pymysql.connect(host=stack.HOST, port=port, user="root", autocommit=True)
        except pymysql.err.OperationalError:
            return None
    root = stack.wait_for(connect, timeout=120, interval=0.3, what="the test's MariaDB to answer")
    with root.cursor() as cur:
        cur.execute("CREATE USER %s IDENTIFIED BY %s", (stack.MYSQL["user"], stack.MYSQL["password"]))
        cur.execute(f"GRANT ALL ON *.* TO `{stack.MYSQL['user']}`")
        cur.execute("SELECT @@GLOBAL.sql_mode")
        assert cur.fetchone()[0] == "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES"
    root.close()
    yield port
    assert server.stop() == 0


def test_hostile_ids_round_trip_through_apply_and_verify(mongo_db, private_mariadb, topics):  # noqa: F811
    """Collection `a` holds one document whose _id, backslash-escaped and read without backslash
    escapes, ends its literal and appends a DROP TABLE (verify reads it first: collections go in name
    order); `b` holds other quotes and backslashes. Both reach MySQL intact, verify finds them equal
    to MongoDB, and nothing is dropped."""
    port = private_mariadb
    collections = {"a": ["x\\') OR 1=1; DROP TABLE canary; -- "],
                   "b": ["it's", "back\\slash\\", 'dq"uote', "plain"]}
    prefix = stack.unique("mode")
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    ordinal = 0
    for collection, ids in collections.items():
        mongo_db[collection].insert_many([{"_id": i, "n": k} for k, i in enumerate(ids)])
        topics.append(make_topic(prefix, collection, 1, db=mongo_db.name))
        for k, i in enumerate(ids):
            ordinal += 1
            t, key, value = scenarios.encode({"op": "insert", "db": mongo_db.name, "collection": collection,
                                              "document": json.dumps({"_id": i, "n": k})}, prefix, ordinal)
            producer.produce(t, key=key, value=value)
    assert producer.flush(60) == 0

    database = stack.unique("t")
    mysql = ["--mysql-host", stack.HOST, "--mysql-port", str(port), "--mysql-user", stack.MYSQL["user"],
             "--mysql-database", database]
    env = {"M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}
    applied = subprocess.run([str(stack.BINARY), "apply", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                              "--topics", ",".join(topics), "--group", stack.unique("g"), "--until-caught-up", *mysql],
                             capture_output=True, text=True, timeout=300, env=env)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]

    conn = pymysql.connect(host=stack.HOST, port=port, user="root", database=database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE canary (n INT)")
        for collection, ids in collections.items():
            cur.execute(f"SELECT `_id`, n FROM `{collection}` ORDER BY n")
            assert [(bytes(i).decode(), n) for i, n in cur.fetchall()] == [(i, k) for k, i in enumerate(ids)]

    verified = subprocess.run([str(stack.BINARY), "verify", "--mongo-uri", stack.MONGO_URI, "--db", mongo_db.name,
                               "--recheck-after", "0", *mysql], capture_output=True, text=True, timeout=300, env=env)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'canary'",
                    (database,))
        assert cur.fetchone()[0] == 1, "a document's _id dropped a table:\n" + verified.stdout + verified.stderr
    conn.close()
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    assert "verify: 2 collections, 5 documents checked: clean" in verified.stdout, verified.stdout
