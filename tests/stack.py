"""Where the local stack's servers are, for tests and tools (stack/env.sh sets the same variables),
and small helpers to wait on conditions instead of sleeping."""
import contextlib
import os
import secrets
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("M2M_STATE", ROOT / ".stack"))
HOST = os.environ.get("M2M_HOST", "127.0.0.1")
MONGO_URI = f"mongodb://{HOST}:{os.environ.get('M2M_MONGO_PORT', '27017')}"
KAFKA_BOOTSTRAP = f"{HOST}:{os.environ.get('M2M_KAFKA_PORT', '9092')}"
MYSQL = dict(
    host=HOST,
    port=int(os.environ.get("M2M_MYSQL_PORT", "3306")),
    user=os.environ.get("M2M_MYSQL_USER", "mongo2mysql"),
    password=os.environ.get("M2M_MYSQL_PASSWORD", "mongo2mysql"),
)
BINARY = ROOT / os.environ.get("M2M_BUILD", "build") / "mongo2mysql"


def unique(prefix: str) -> str:
    """A name no other test run uses: tests isolate their topics, databases and groups."""
    return f"{prefix}_{secrets.token_hex(6)}"


def free_port() -> int:
    """A TCP port on HOST that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=120.0, interval=0.1, what="condition"):
    """Polls `condition` until it returns a truthy value, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def own_mysql_database():
    """A MySQL database no other test uses; yields (name, autocommit connection); dropped after."""
    import pymysql

    name = unique("t")
    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.select_db(name)
    try:
        yield name, conn
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
