"""The README's first command, in its short mode: the demo runs to completion and MySQL ends equal
to MongoDB, collection by collection and, by mongo2mysql verify, document by document."""
import re
import subprocess
import sys

import pymongo
import pymysql

import stack


def test_demo_runs_to_completion_with_mysql_equal_to_mongodb():
    database = stack.unique("demo")
    try:
        result = subprocess.run([sys.executable, str(stack.ROOT / "stack" / "demo.py"), "--short",
                                 "--database", database], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        counts = re.findall(r"^\s+(\w+)\s+MongoDB\s+(\d+)\s+MySQL\s+(\d+)$", result.stdout, re.M)
        assert [c[0] for c in counts] == ["customers", "products", "orders"]
        assert all(mongo == mysql and int(mongo) > 0 for _, mongo, mysql in counts), counts
        assert re.search(r"^\s+verify: 3 collections, \d+ documents checked: clean", result.stdout, re.M), \
            result.stdout[-3000:]
        assert "== done:" in result.stdout
    finally:
        pymongo.MongoClient(stack.MONGO_URI).drop_database(database)
        conn = pymysql.connect(**stack.MYSQL, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
