"""The m2m_core extension (spark/native) against the stack's MariaDB, without Spark: the apply core
as the Spark engine's tasks host it. Records are built in the event format (scenarios.encode) and
handed over as Spark's Kafka source would."""
import pymysql
import pytest

import scenarios
import stack

m2m_core = pytest.importorskip("m2m_core", reason="the extension is built by `make` into build/python")


def records(prefix, events, first_offset=0):
    """Columns of one partition's records, as core.py passes them to RangeRun.feed."""
    encoded = [scenarios.encode(e, prefix, i + 1) for i, e in enumerate(events)]
    return ([t for t, _, _ in encoded], [0] * len(encoded), list(range(first_offset, first_offset + len(encoded))),
            [k for _, k, _ in encoded], [v for _, _, v in encoded], [1_700_000_000_000_000] * len(encoded))


def applier(database, group, **options):
    return m2m_core.Applier(mysql={**stack.MYSQL, "database": database}, group=group, **options)


def run(a, columns, release=None, **options):
    task = m2m_core.RangeRun(a, [release] if release else [], **options)
    task.feed(*columns)
    return task.finish()


def query(database, sql):
    conn = pymysql.connect(**stack.MYSQL, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def inserts(n, collection="items"):
    return [{"op": "insert", "collection": collection, "document": f'{{"_id": {i}, "n": {i * 10}}}'}
            for i in range(1, n + 1)]


def test_a_partition_is_applied_once_however_often_it_is_fed(mysql_db):
    database, group, prefix = mysql_db[0], stack.unique("g"), stack.unique("x")
    columns = records(prefix, inserts(10))
    a = applier(database, group)
    first = run(a, columns)
    # The collection has no tables yet: its first event is a barrier, held until the driver releases it.
    assert first["held"] is not None and first["held"][3:] == (f"{prefix}.test.items", 0, 0)
    assert first["records"] == 0
    second = run(a, columns, release=first["held"], max_batch_events=3)
    assert second["held"] is None and second["records"] == 10 and second["skipped"] == 0
    assert query(database, "SELECT _id, n FROM items ORDER BY _id") == tuple((i, i * 10) for i in range(1, 11))
    # A replayed batch, or a task retried on another worker (another Applier): everything skipped.
    again = run(applier(database, group), columns)
    assert again["skipped"] == 10 and again["held"] is None
    assert query(database, f"SELECT next_offset, applied_events FROM _m2m_offsets WHERE group_id = '{group}'") == (
        (10, 10),)


def test_two_owners_of_one_partition_apply_it_once(mysql_db):
    """A task and its retry (or a zombie) on two workers: the one that commits second finds the
    offset moved, redoes its batch from the stored offset and applies nothing twice."""
    database, group, prefix = mysql_db[0], stack.unique("g"), stack.unique("x")
    seed = records(prefix, inserts(1))
    run(applier(database, group), seed, release=run(applier(database, group), seed)["held"])
    columns = records(prefix, [{"op": "update", "collection": "items", "key": '{"_id": 1}',
                                "updated": f'{{"n": {v}}}'} for v in range(2, 12)], first_offset=1)
    slow, fast = applier(database, group), applier(database, group)
    late = m2m_core.RangeRun(slow, [], max_batch_events=1000)
    late.feed(*columns)  # batched, not committed
    assert run(fast, columns)["records"] == 10
    outcome = late.finish()
    assert outcome["retries"] >= 1
    assert query(database, "SELECT n FROM items") == ((11,),)
    assert query(database, f"SELECT next_offset, applied_events FROM _m2m_offsets WHERE group_id = '{group}'") == (
        (11, 11),)


def test_a_broken_record_is_quarantined_and_the_rest_applied(mysql_db):
    database, group, prefix = mysql_db[0], stack.unique("g"), stack.unique("x")
    topics, partitions, offsets, keys, values, stamps = records(prefix, inserts(3))
    values[1] = b"{not json"
    a = applier(database, group)
    held = run(a, (topics, partitions, offsets, keys, values, stamps))["held"]
    outcome = run(a, (topics, partitions, offsets, keys, values, stamps), release=held)
    assert outcome["records"] == 3
    assert query(database, "SELECT _id FROM items ORDER BY _id") == ((1,), (3,))
    quarantined = query(database, "SELECT topic, `partition`, `offset`, error FROM _m2m_quarantine")
    assert [(bytes(t).decode(), p, o) for t, p, o, _ in quarantined] == [(topics[1], 0, 1)]
    assert "cannot decode the event" in str(quarantined[0][3])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="mysql option sslmode is not known"):
        m2m_core.Applier(mysql={"sslmode": "x", "database": "d"}, group="g")
    with pytest.raises(ValueError, match="on_drop must be keep or drop"):
        m2m_core.Applier(mysql={"database": "d"}, group="g", on_drop="sometimes")
    with pytest.raises(ValueError, match="mysql.database is required"):
        m2m_core.Applier(mysql={}, group="g")


def test_an_unreachable_server_is_a_retriable_error(mysql_db):
    a = m2m_core.Applier(mysql={**stack.MYSQL, "port": 1, "database": "d", "timeout_seconds": 2}, group="g")
    task = m2m_core.RangeRun(a, [], retry_for_seconds=1)
    with pytest.raises(m2m_core.ApplyError) as e:
        task.feed(*records(stack.unique("x"), inserts(1)))
    assert e.value.retriable and "gave up after 1 s" in str(e.value)


def test_a_task_of_several_partitions_holds_each_at_its_own_barrier(mysql_db):
    """The Spark job coalesces Kafka partitions into as many tasks as it has slots: a barrier held in
    one partition of a task must not hold the others (they would be neither at their range's end nor
    held, and the driver could release a barrier ahead of them). Arrow batches as Spark hands them,
    one of them spanning both partitions."""
    import pyarrow as pa
    from m2m_spark import core

    database, group, prefix = mysql_db[0], stack.unique("g"), stack.unique("x")
    known = records(prefix, inserts(1, "known"))
    run(applier(database, group), known, release=run(applier(database, group), known)["held"])  # its tables exist
    fresh = records(prefix, inserts(3, "fresh"))  # a collection without tables: a barrier first
    more = records(prefix, [{"op": "insert", "collection": "known", "document": f'{{"_id": {i}, "n": {i * 10}}}'}
                            for i in range(2, 6)], first_offset=1)
    rows = [dict(zip(("topic", "partition", "offset", "key", "value"), r)) for r in zip(*fresh[:5])]
    rows += [dict(zip(("topic", "partition", "offset", "key", "value"), r)) for r in zip(*more[:5])]
    for r in rows:
        r["timestamp"] = 1_700_000_000_000_000
    schema = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
                        ("key", pa.binary()), ("value", pa.binary()), ("timestamp", pa.timestamp("us"))])
    batches = [pa.RecordBatch.from_pylist(rows[:2], schema), pa.RecordBatch.from_pylist(rows[2:5], schema),
               pa.RecordBatch.from_pylist(rows[5:], schema)]
    settings = core.Settings(group=group, mysql=tuple(sorted({**stack.MYSQL, "database": database}.items())))

    outcomes = [o for b in core.apply_partitions(settings, [])(iter(batches)) for o in b.to_pylist()]
    by_topic = {o["topic"]: o for o in outcomes}
    assert len(outcomes) == 2
    held = by_topic[f"{prefix}.test.fresh"]
    assert (held["records"], held["held_offset"], held["held_rank"]) == (0, 0, 2)
    went_on = by_topic[f"{prefix}.test.known"]
    assert (went_on["records"], went_on["skipped"], went_on["held_t"]) == (4, 0, None)
    assert query(database, "SELECT _id, n FROM known ORDER BY _id") == tuple((i, i * 10) for i in range(1, 6))

    # The next round releases the held barrier: the fresh partition lands, the other is skipped.
    release = [core.held_key(held)]
    outcomes = [o for b in core.apply_partitions(settings, release)(iter(batches)) for o in b.to_pylist()]
    assert sorted((o["topic"].rsplit(".", 1)[1], o["records"], o["skipped"], o["held_t"]) for o in outcomes) == [
        ("fresh", 3, 0, None), ("known", 4, 4, None)]
    assert query(database, "SELECT _id, n FROM fresh ORDER BY _id") == tuple((i, i * 10) for i in range(1, 4))
