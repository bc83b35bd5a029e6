"""Runs the engine-neutral scenario files (tests/scenarios/*.yaml, format in their README) against
a real engine: the scenario's events are encoded in the documented Kafka format (docs/events.md),
produced to topics of the scenario's own, applied by the engine into a MySQL database of its own,
and the resulting tables compared with the scenario's expectation.

An engine is a callable engine(run: ScenarioRun) that applies every event in run.topics to
run.mysql_database and returns when done (each engine's "until caught up" mode)."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from bson import json_util
from bson.codec_options import DatetimeConversion
from bson.json_util import CANONICAL_JSON_OPTIONS

# Dates outside Python's datetime range (scenario 11) stay BSON dates (DatetimeMS) instead of failing.
_LOAD_OPTIONS = CANONICAL_JSON_OPTIONS.with_options(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import stack

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def scenario_files():
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def skip_unless_for(path, engine):
    """Skips the test when the scenario names the engines it is for (`engines:`) and `engine` is not
    one. Both engines run the same core, so a scenario names them only while a branch still differs."""
    import pytest

    engines = yaml.safe_load(path.read_text()).get("engines")
    if engines is not None and engine not in engines:
        pytest.skip(f"{path.stem} is for the {', '.join(engines)} engine only")


@dataclass
class ScenarioRun:
    """What an engine needs to apply one scenario."""
    scenario: dict
    prefix: str                      # topic prefix, as capture's --topic-prefix
    topics: list[str]
    mysql_database: str
    group: str                       # consumer group / checkpoint name of its own
    mapping_file: Path | None        # the scenario's mapping, written to a file, or None
    max_batch_events: int | None     # None: the engine's default; 1: one event per batch
    workdir: Path
    extra: dict = field(default_factory=dict)


def canonical(ejson_text):
    """Relaxed or canonical Extended JSON -> canonical Extended JSON text, as capture writes it."""
    return json_util.dumps(json_util.loads(ejson_text, json_options=_LOAD_OPTIONS), json_options=CANONICAL_JSON_OPTIONS)


def encode(event, prefix, ordinal):
    """One scenario event -> (topic, key bytes, value bytes) in the format of docs/events.md."""
    db, coll, op = event.get("db", "test"), event["collection"], event["op"]
    topic = f"{prefix}.{db}.{coll}"
    document = json_util.loads(event["document"], json_options=_LOAD_OPTIONS) if "document" in event else None
    key_doc = json_util.loads(event["key"], json_options=_LOAD_OPTIONS) if "key" in event else (
        {"_id": document["_id"]} if document is not None else None)
    collection_level = op in ("drop", "rename", "dropDatabase", "invalidate")
    dumps = lambda v: json_util.dumps(v, json_options=CANONICAL_JSON_OPTIONS)  # noqa: E731
    update_description = None
    if op == "update" and ("updated" in event or "removed" in event or "truncated" in event):
        update_description = {
            "updatedFields": canonical(event.get("updated", "{}")),
            "removedFields": event.get("removed") or None,
            "truncatedArrays": [{"field": t["field"], "size": t["new_size"]} for t in event.get("truncated", [])] or None,
        }
    m2m = {"v": 1, "event": op, "resume_token": json.dumps({"_data": f"{ordinal:016x}"}),
           "cluster_time": {"t": 1700000000, "i": ordinal}}
    if not collection_level:
        m2m["document_key"] = dumps(key_doc)
    if op == "rename":
        m2m["rename_to"] = {"db": event.get("to_db", db), "collection": event["to"]}
    if event.get("document_gone"):
        m2m["document_gone"] = True
    value = {
        "before": None,
        "after": dumps(document) if document is not None and op != "delete" else None,
        "updateDescription": update_description,
        "source": {"version": "mongo2mysql/1", "connector": "mongodb", "name": prefix, "ts_ms": 1700000000000,
                   "snapshot": "true" if op == "read" else "false", "db": db,
                   "collection": None if op == "dropDatabase" else coll, "ord": ordinal, "lsid": None,
                   "txnNumber": None, "wallTime": 1700000000000},
        "op": {"insert": "c", "read": "r", "update": "u", "replace": "u", "delete": "d"}.get(op, "m"),
        "ts_ms": 1700000000000,
        "transaction": None,
        "m2m": m2m,
    }
    key = {"id": None if collection_level else dumps(key_doc["_id"])}
    return topic, json.dumps(key).encode(), json.dumps(value).encode()


def prepare(path, mysql_database, workdir, max_batch_events=None, transactional=False):
    """Produces the scenario's events to fresh topics and returns the ScenarioRun for an engine.
    transactional: in one Kafka transaction, as capture produces (commit markers follow the records)."""
    scenario = yaml.safe_load(path.read_text())
    prefix = stack.unique("sc")
    encoded = [encode(e, prefix, i + 1) for i, e in enumerate(scenario["events"])]
    topics = sorted({t for t, _, _ in encoded})
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(60)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True,
                         **({"transactional.id": stack.unique("tx")} if transactional else {})})
    if transactional:
        producer.init_transactions(60)
        producer.begin_transaction()
    for topic, key, value in encoded:
        producer.produce(topic, key=key, value=value)
    if transactional:
        producer.commit_transaction(60)
    assert producer.flush(60) == 0
    mapping_file = None
    if scenario.get("mapping"):
        mapping_file = workdir / "mapping.yaml"
        mapping_file.write_text(scenario["mapping"])
    return ScenarioRun(scenario, prefix, topics, mysql_database, stack.unique("g"), mapping_file,
                       max_batch_events, workdir)


def table_state(conn, database):
    """{table: (columns, sorted rows as text)} of every table in `database`, values as the text
    protocol returns them (NULL as None)."""
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
        tables = [r[0] for r in cur.fetchall()]
        for table in tables:
            cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                        "TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, table))
            columns = [r[0] for r in cur.fetchall()]
            cur.execute(f"SELECT * FROM `{database}`.`{table.replace('`', '``')}`")
            out[table] = (columns, cur.fetchall())
    return out


def _comparable(value, is_json):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="surrogateescape")
    return json.dumps(json.loads(value), sort_keys=True) if is_json else str(value)


def assert_matches(scenario, state):
    """The tables in `state` are exactly the scenario's `expect`, rows in any order."""
    expect = scenario["expect"]
    # Engine bookkeeping (offsets, quarantine) lives in tables whose names start with "_m2m".
    mapped = {t: v for t, v in state.items() if not t.startswith("_m2m")}
    assert sorted(mapped) == sorted(expect), f"tables: got {sorted(mapped)}, expected {sorted(expect)}"
    for table, want in expect.items():
        columns, rows = mapped[table]
        assert columns == want["columns"], f"{table}: columns {columns}, expected {want['columns']}"
        json_cols = {columns.index(c) for c in want.get("json", [])}
        got = sorted((tuple(_comparable(v, i in json_cols) for i, v in enumerate(r)) for r in rows), key=repr)
        exp = sorted((tuple(_comparable(None if v is None else str(v), i in json_cols) for i, v in enumerate(r))
                      for r in want.get("rows", [])), key=repr)
        assert got == exp, f"{table}: rows differ\n got: {got}\nwant: {exp}"
