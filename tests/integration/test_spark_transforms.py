"""User SQL transforms of the Spark engine (docs/spark.md, "Transforms"): a derived column, a filter
and aggregates kept in summary tables stay equal to their statement over the replica table through
inserts, updates (deltas and replaces), deletes, rows moving between groups, and a restart of the job.
The native engine refuses such a mapping by name."""
import json
import subprocess

import pymysql
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import engines
import scenarios
import stack

MAPPING = """
transforms:
  big_orders:                     # derived column + filter, row by row (key: the source's _id)
    from: orders
    sql: SELECT _id, customer, qty * price AS total FROM orders WHERE status <> 'cancelled' AND qty >= 2
  customer_totals:                # an aggregate per customer
    from: orders
    key: [customer]
    sql: >
      SELECT customer, COUNT(*) AS orders, SUM(qty * price) AS revenue FROM orders
      WHERE customer IS NOT NULL GROUP BY customer
  sku_units:                      # an aggregate over a child table
    from: orders_items
    key: [sku]
    sql: SELECT sku, SUM(n) AS units FROM orders_items GROUP BY sku
"""


def order(_id, customer, qty, price, status="open", items=()):
    return {"op": "insert", "collection": "orders", "document": json.dumps(
        {"_id": _id, "customer": customer, "qty": qty, "price": price, "status": status,
         "items": [{"sku": s, "n": n} for s, n in items]})}


FIRST = [
    order(1, "ann", 2, 10.0, items=[("a", 1), ("b", 2)]),
    order(2, "ann", 3, 1.5, items=[("a", 5)]),
    order(3, "bob", 1, 7.0),                      # qty 1: filtered out of big_orders
    order(4, "cid", 4, 2.0, items=[("c", 1)]),
    {"op": "update", "collection": "orders", "key": '{"_id": 3}', "updated": '{"qty": 5}'},  # now matches
]
SECOND = [  # after a restart of the job
    {"op": "update", "collection": "orders", "key": '{"_id": 2}', "updated": '{"status": "cancelled"}'},
    {"op": "update", "collection": "orders", "key": '{"_id": 3}', "updated": '{"customer": "ann"}'},  # bob empties
    {"op": "delete", "collection": "orders", "key": '{"_id": 4}'},                                      # cid empties
    {**order(1, "ann", 6, 10.0, items=[("b", 1)]), "op": "replace"},
    order(5, "dee", 2, 0.5, items=[("a", 1)]),
    {"op": "update", "collection": "orders", "key": '{"_id": 5}', "updated": '{"qty": 1}'},             # stops matching
]


def produce(topic, prefix, events, first_ordinal):
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})
    for i, e in enumerate(events):
        _, key, value = scenarios.encode(e, prefix, first_ordinal + i)
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0


def rows(database, sql):
    conn = pymysql.connect(**stack.MYSQL, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return sorted(tuple(float(v) if isinstance(v, float) else v for v in r) for r in cur.fetchall())
    finally:
        conn.close()


def assert_results_match_the_replica(database):
    """Each result table equals its statement run by MySQL over the whole replica."""
    assert rows(database, "SELECT _id, customer, total FROM big_orders") == rows(
        database, "SELECT _id, customer, qty * price FROM orders WHERE status <> 'cancelled' AND qty >= 2")
    assert rows(database, "SELECT CAST(customer AS CHAR), orders, revenue FROM customer_totals") == rows(
        database, "SELECT customer, COUNT(*), SUM(qty * price) FROM orders GROUP BY customer")
    assert rows(database, "SELECT CAST(sku AS CHAR), units FROM sku_units") == rows(
        database, "SELECT sku, SUM(n) FROM orders_items GROUP BY sku")


def test_transforms_follow_inserts_updates_deletes_and_a_restart(mysql_db, tmp_path):
    database = mysql_db[0]
    prefix = stack.unique("tf")
    topic = f"{prefix}.test.orders"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})  # must outlive the request
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    # Three events per batch: groups change across batches, and within one (before- and after-image).
    run = scenarios.ScenarioRun({}, prefix, [topic], database, stack.unique("g"), mapping, 3, tmp_path)

    produce(topic, prefix, FIRST, 1)
    engines.spark(run)
    assert rows(database, "SELECT _id, customer, total FROM big_orders") == [
        (1, "ann", 20.0), (2, "ann", 4.5), (3, "bob", 35.0), (4, "cid", 8.0)]
    assert rows(database, "SELECT CAST(customer AS CHAR), orders, revenue FROM customer_totals") == [
        ("ann", 2, 24.5), ("bob", 1, 35.0), ("cid", 1, 8.0)]
    assert rows(database, "SELECT CAST(sku AS CHAR), units FROM sku_units") == [("a", 6), ("b", 2), ("c", 1)]
    assert_results_match_the_replica(database)

    produce(topic, prefix, SECOND, len(FIRST) + 1)
    engines.spark(run)  # a new query on the same checkpoint: the job restarted
    assert rows(database, "SELECT _id, customer, total FROM big_orders") == [(1, "ann", 60.0), (3, "ann", 35.0)]
    assert rows(database, "SELECT CAST(customer AS CHAR), orders, revenue FROM customer_totals") == [
        ("ann", 3, 99.5), ("dee", 1, 0.5)]
    assert rows(database, "SELECT CAST(sku AS CHAR), units FROM sku_units") == [("a", 6), ("b", 1)]
    assert_results_match_the_replica(database)


def test_a_transform_added_later_is_computed_from_the_whole_table(mysql_db, tmp_path):
    database = mysql_db[0]
    run = scenarios.prepare(_scenario(tmp_path, [order(1, "ann", 2, 1.0), order(2, "bob", 3, 1.0)]), database, tmp_path)
    engines.spark(run)
    assert rows(database, "SHOW TABLES LIKE 'customer_totals'") == []
    run.mapping_file = tmp_path / "with-transforms.yaml"
    run.mapping_file.write_text(MAPPING)
    produce(run.topics[0], run.prefix, [order(3, "ann", 1, 1.0)], 3)
    engines.spark(run)
    assert rows(database, "SELECT CAST(customer AS CHAR), orders FROM customer_totals") == [("ann", 2), ("bob", 1)]
    assert rows(database, "SELECT _id, total FROM big_orders") == [(1, 2.0), (2, 3.0)]


def _scenario(tmp_path, events):
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps({"events": events, "expect": {}}))
    return path


def test_native_apply_refuses_a_mapping_with_transforms(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    result = subprocess.run([str(stack.BINARY), "apply", "--topics", "x", "--group", "g", "--mysql-database", "x",
                             "--mapping", str(mapping)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "transforms (big_orders, customer_totals, sku_units) run only in the Spark engine" in result.stderr
