"""foreachBatch: one micro-batch -> MySQL, exactly once.

Protocol (docs/spark.md, "Exactly once"). Table `_m2m_spark_batches` holds, per job, the last batch
id written, the segment reached and the batch's Kafka offsets. A batch is cut into segments at
collection operations (drop, rename), whose DDL cannot share a transaction. For each segment: its
DDL (idempotent: the catalog is re-read from information_schema, so a replay emits none), then ONE
transaction with its rows, its quarantined events and the progress row, then its collection
operation. Spark replays a batch with the same id and the same offsets after a crash; the progress
row says what to skip. An event whose statements MySQL refuses is quarantined inside that protocol
(BatchWriter.write_segment)."""
import contextlib
import json
import logging
import time
from dataclasses import dataclass

import pymysql
from pyspark import SparkContext
from pyspark.sql import Window, functions as F

from . import cells as cells_mod
from . import events as events_mod
from . import lost
from . import mapping as mp
from . import render
from . import transforms as transforms_mod
from .arrow import collect_tuples
from .sqltypes import quote_identifier as qi

log = logging.getLogger("m2m_spark")

# The session of every connection: as the native engine's (core/src/mysql_client.cc, apply/apply.cc).
SESSION_SETUP = ("SET time_zone = '+00:00', "
                 "sql_mode = CONCAT(REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', ''), ',STRICT_ALL_TABLES')")
# The client's packet limit: the protocol's largest, so that only the server's max_allowed_packet
# bounds a statement (a 16 MB document makes a larger one). pymysql's default is 16 MiB (1.4 applies
# it to LOAD DATA only). A statement over the server's limit is refused with ER_NET_PACKET_TOO_LARGE
# and its event quarantined.
MAX_PACKET_BYTES = 1 << 30
ER_BAD_DB_ERROR = 1049
# MySQL refuses ALGORITHM=INSTANT: before 8.0.12 / on some row formats, when the table would get too
# many columns (1845, 1846), or after 64 instant changes to a table on 8.0.29+ (4092). The column is
# added the slow way then, as the native engine does (apply/apply.cc, IsInstantRefused).
INSTANT_REFUSED = frozenset({1845, 1846, 4092})
# MySQL errors that say the event itself cannot be applied, so its statements would fail again on
# every retry: the event is quarantined. The native engine's list (IsEventError,
# apply/bookkeeping.cc); any other error (connection, permissions) is not the event's fault and
# stops the job.
EVENT_ERRORS = frozenset({
    1005,  # ER_CANT_CREATE_TABLE (too many columns, a row too wide)
    1048,  # ER_BAD_NULL_ERROR
    1062,  # ER_DUP_ENTRY
    1071,  # ER_TOO_LONG_KEY
    1117,  # ER_TOO_MANY_FIELDS
    1118,  # ER_TOO_BIG_ROWSIZE
    1153,  # ER_NET_PACKET_TOO_LARGE: one row over max_allowed_packet
    1264,  # ER_WARN_DATA_OUT_OF_RANGE
    1292,  # ER_TRUNCATED_WRONG_VALUE
    1366,  # ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    1406,  # ER_DATA_TOO_LONG
    1451,  # ER_ROW_IS_REFERENCED_2
    1452,  # ER_NO_REFERENCED_ROW_2
    3140,  # ER_INVALID_JSON_TEXT (MySQL)
    3819,  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
    4025,  # ER_CONSTRAINT_FAILED (MariaDB, JSON columns included)
})


def _event_error(err):
    return bool(err.args) and err.args[0] in EVENT_ERRORS


def _why(err):
    """The quarantine's error text of a MySQL refusal."""
    return f"MySQL refused the event's statements: {err.args[1] if len(err.args) > 1 else err} (errno {err.args[0]})"


class _Refused(Exception):
    """MySQL refused an event's statements and closed the connection: the transaction is lost."""

    def __init__(self, event, why):
        super().__init__(why)
        self.event, self.why = event, why

BATCHES_DDL = """CREATE TABLE IF NOT EXISTS `_m2m_spark_batches` (
  job VARCHAR(255) NOT NULL PRIMARY KEY, batch_id BIGINT NOT NULL, segment INT NOT NULL,
  complete TINYINT(1) NOT NULL, offsets LONGTEXT NOT NULL, updated_at TIMESTAMP(3) NOT NULL)
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"""
QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS `_m2m_spark_quarantine` (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, job VARCHAR(255) NOT NULL, batch_id BIGINT NOT NULL,
  topic VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL, error TEXT NOT NULL,
  value LONGTEXT NULL, UNIQUE KEY (job, topic, `partition`, `offset`))
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"""
# Records held back by the order across topics (docs/spark.md, "Order across topics"): kept by the
# batch `held_by`, applied (and `released_by` set) by a later one, deleted by the batch after that.
PENDING_DDL = """CREATE TABLE IF NOT EXISTS `_m2m_spark_pending` (
  job VARCHAR(255) NOT NULL, topic VARCHAR(255) NOT NULL, `partition` INT NOT NULL, `offset` BIGINT NOT NULL,
  held_by BIGINT NOT NULL, released_by BIGINT NULL, `key` LONGBLOB NULL, value LONGBLOB NULL,
  PRIMARY KEY (job, topic, `partition`, `offset`))
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"""


@dataclass
class Event:
    ord: int
    topic: str
    partition: int
    offset: int
    event: str
    collection: str
    keys: list
    label: str
    has_after: bool
    has_update: bool
    updated_keys: list
    removed: list
    truncated: list
    rename_to: str
    error: str
    raw_value: str
    raw_key: str
    ct: tuple

    @property
    def where(self):
        return self.topic, self.partition, self.offset


def _sql_literal(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _path_value(doc, comps):
    """SQL for (raw text, variant kind) of the value at a dotted path of a JSON document."""
    parent = doc
    for c in comps[:-1]:
        parent = f"{cells_mod.parse(parent, 'map<string,string>')}[{_sql_literal(c)}]"
    last = _sql_literal(comps[-1])
    return (f"{cells_mod.parse(parent, 'map<string,string>')}[{last}]",
            f"schema_of_variant({cells_mod.parse(parent, 'map<string,variant>')}[{last}])")


def _with_keys(evs, cfg):
    """Adds `keys`: array of struct(nat, text, raw), the primary key values of each event, from
    `after`, else from documentKey (docs/mapping.md, section 1)."""
    pks = {tuple(cm.primary_key) for cm in cfg.collections.values()} | {("_id",)}
    choice = {("_id",): "true"}
    for n, cm in cfg.collections.items():
        choice[tuple(cm.primary_key)] = choice.get(tuple(cm.primary_key), "false") + f" OR collection = {_sql_literal(n)}"
    configured = [_sql_literal(n) for n in cfg.collections]
    if configured:
        choice[("_id",)] = f"NOT collection IN ({','.join(configured)})" + "".join(
            f" OR collection = {_sql_literal(n)}" for n, cm in cfg.collections.items() if cm.primary_key == ["_id"])
    cols, pick = [], []
    for i, pk in enumerate(sorted(pks)):
        for j, p in enumerate(pk):
            (raw_a, kind_a), (raw_d, kind_d) = (_path_value(d, p.split(".")) for d in ("after", "document_key"))
            evs = evs.selectExpr("*", f"coalesce({raw_a}, {raw_d}) AS _kr",
                                 f"IF({raw_a} IS NOT NULL, {kind_a}, {kind_d}) AS _kk")
            evs = cells_mod.classify(evs, "_kr", "_kk", f"_k{i}_{j}").drop("_kr", "_kk")
            cols.append(f"_k{i}_{j}")
        pick.append(f"WHEN {choice[pk]} THEN array({','.join(f'_k{i}_{j}' for j in range(len(pk)))})")
    return evs.selectExpr("*", f"CASE {' '.join(pick)} END AS keys").drop(*cols)


def _utf8(text):
    return None if text is None else text.encode("utf-8")


def partitions_behind(kafka, fetched_end, timeout_s=5.0):
    """The partitions of `fetched_end` ({(topic, partition): offset after the last record fetched})
    that hold a record at or after that offset. A Kafka consumer in the driver's JVM compares the
    end offsets and, where they are past, reads on: what lies between may be only transaction
    markers (capture produces in transactions), which are no records."""
    jvm = SparkContext._jvm
    with _consumer(kafka) as consumer:
        tps = {tp: jvm.org.apache.kafka.common.TopicPartition(*tp) for tp in fetched_end}
        wanted = jvm.java.util.ArrayList()
        for jtp in tps.values():
            wanted.add(jtp)
        end = consumer.endOffsets(wanted)
        gaps = {tp: jtp for tp, jtp in tps.items() if end.get(jtp) > fetched_end[tp]}
        behind = set()
        for tp, jtp in gaps.items():
            one = jvm.java.util.ArrayList()
            one.add(jtp)
            consumer.assign(one)
            consumer.seek(jtp, fetched_end[tp])
            deadline = time.monotonic() + timeout_s
            while consumer.position(jtp) < end.get(jtp):
                if not consumer.poll(jvm.java.time.Duration.ofMillis(100)).isEmpty():
                    behind.add(tp)
                    break
                if time.monotonic() > deadline:  # cannot tell: holding back is the safe side
                    behind.add(tp)
                    break
        return behind


@contextlib.contextmanager
def _consumer(kafka):
    """A Kafka consumer in the driver's JVM: the connector's own client, so the job's kafka.*
    options apply as they do to the source."""
    jvm = SparkContext._jvm
    props = jvm.java.util.Properties()
    for k, v in {**kafka, "enable.auto.commit": "false", "max.poll.records": "1"}.items():
        props.setProperty(k, v)
    deserializer = jvm.org.apache.kafka.common.serialization.ByteArrayDeserializer
    consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props, deserializer(), deserializer())
    try:
        yield consumer
    finally:
        consumer.close()


def first_offset(kafka, topic, partition):
    """The offset of the first record Kafka holds in a partition."""
    jvm = SparkContext._jvm
    with _consumer(kafka) as consumer:
        wanted = jvm.java.util.ArrayList()
        jtp = jvm.org.apache.kafka.common.TopicPartition(topic, partition)
        wanted.add(jtp)
        return consumer.beginningOffsets(wanted).get(jtp)


class BatchWriter:
    """The foreachBatch function of one job. Runs on the driver; holds no state between batches
    except the MySQL connection settings (the catalog is re-read per batch), and during a batch
    its connection (`conn`)."""

    def __init__(self, job, cfg, mysql, kafka):
        """kafka: properties of a Kafka consumer (bootstrap.servers, security ...) that can read
        the end offsets of the job's partitions."""
        self.job, self.cfg, self.mysql, self.kafka = job, cfg, mysql, kafka
        self.conn = None
        conn = self.connect()
        with conn.cursor() as cur:
            for ddl in (BATCHES_DDL, QUARANTINE_DDL, PENDING_DDL):
                cur.execute(ddl)
        conn.close()

    def connect(self):
        """A session as the native engine's (core/src/mysql_client.cc): UTC, strict (MySQL refuses
        a value it would otherwise cut, and the event is quarantined), backslash escapes in literals
        (render.py). The database is created when missing, as `mongo2mysql apply` does."""
        settings = dict(self.mysql, charset="utf8mb4", autocommit=True, max_allowed_packet=MAX_PACKET_BYTES,
                        init_command=SESSION_SETUP)
        try:
            return pymysql.connect(**settings)
        except pymysql.err.MySQLError as err:
            if not err.args or err.args[0] != ER_BAD_DB_ERROR:
                raise
        conn = pymysql.connect(**dict(settings, database=None))
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {qi(self.mysql['database'])} DEFAULT CHARACTER SET utf8mb4")
        conn.select_db(self.mysql["database"])
        log.info("created the MySQL database %s", self.mysql["database"])
        return conn

    def __call__(self, batch_df, batch_id):
        lost.REPORTED.pop(self.job, None)
        self.conn = self.connect()
        try:
            self.write(batch_df, batch_id)
        except Exception as e:
            # The batch's records are read by its first Spark job: Kafka's records lost before
            # the job read them surface here (docs/spark.md, "Records lost in Kafka").
            found = lost.from_java(getattr(e, "java_exception", None) or getattr(e, "_origin", None),
                                   lambda topic, partition: first_offset(self.kafka, topic, partition))
            if found is None:
                raise
            lost.REPORTED[self.job] = found
            raise found from None
        finally:
            self.conn.close()
            self.conn = None

    def progress(self, cur):
        cur.execute("SELECT batch_id, segment, complete FROM _m2m_spark_batches WHERE job = %s", (self.job,))
        return cur.fetchone()

    def write(self, batch_df, batch_id):
        with self.conn.cursor() as cur:
            done = self.progress(cur)
        if done and (done[0] > batch_id or (done[0] == batch_id and done[2])):
            log.info("batch %s already applied; skipped", batch_id)
            return
        # `segment` counts steps done: 2k+1 once segment k's rows committed, 2k+2 once its
        # collection operation ran too.
        start = done[1] if done and done[0] == batch_id else 0
        with self.conn.cursor() as cur:
            cur.execute("SELECT topic, `partition`, `offset`, `key`, value, released_by FROM _m2m_spark_pending "
                        "WHERE job = %s AND held_by < %s AND (released_by IS NULL OR released_by = %s)",
                        (self.job, batch_id, batch_id))
            pending = cur.fetchall()
            cur.execute("SELECT topic, `partition`, `offset` FROM _m2m_spark_pending WHERE job = %s AND held_by = %s",
                        (self.job, batch_id))
            held_by_this = {tuple(r) for r in cur.fetchall()}
        records = batch_df.select("key", "value", "topic", "partition", "offset")
        if pending:
            records = records.unionByName(batch_df.sparkSession.createDataFrame(
                [(k, v, t, p, o) for t, p, o, k, v, _ in pending], records.schema))
        evs = events_mod.decode(records).withColumn(
            "ord", F.row_number().over(Window.orderBy("ct_t", "ct_i", "topic", "partition", "offset")))
        evs = _with_keys(evs, self.cfg).selectExpr(
            "*", "IF(after IS NULL AND updated IS NOT NULL, json_object_keys(updated), array()) "
            "AS updated_keys").localCheckpoint(eager=False)
        rows = collect_tuples(evs.select("ord", "topic", "partition", "offset", "event", "collection", "keys",
                                         "document_key", F.col("after").isNotNull(), "has_update", "updated_keys",
                                         "removed", "truncated", "rename_to", "error", "raw_value", "raw_key",
                                         "ct_t", "ct_i"))
        events = [Event(r[0], r[1], r[2], r[3], r[4], r[5], [tuple(k) if k else None for k in r[6]],
                        r[7] or "", r[8], r[9], r[10] or [], r[11] or [], r[12] or [], r[13], r[14], r[15],
                        r[16], (r[17], r[18])) for r in sorted(rows, key=lambda r: r[0])]
        fetched = {(t, p) for t, p, _, _, _, _ in pending} | {(e.topic, e.partition) for e in events}
        if start:
            # Rows of this batch are in MySQL: what it held back then is recorded; hold the same.
            held = held_by_this | {(t, p, o) for t, p, o, _, _, released in pending if released is None}
        else:
            held = self.hold_back(events, pending, fetched)
        applied = [e for e in events if e.where not in held]
        pending_ops = self.pending_statements(batch_id, events, pending, held)
        offsets = {}
        for e in events:
            offsets.setdefault(e.topic, {})[str(e.partition)] = max(
                e.offset, offsets.get(e.topic, {}).get(str(e.partition), -1))
        by_ord = {}
        if applied:
            docs = evs.where("error IS NULL AND event IN ('insert','read','replace','update')")
            if len(applied) < len(events):  # one SQL string: a Column per value costs a py4j call each
                docs = docs.where(f"ord IN ({','.join(str(e.ord) for e in applied)})")
            for c in cells_mod.cells(docs, self.cfg):
                by_ord.setdefault(c.ord, []).append(c)
            for cs in by_ord.values():
                cs.sort(key=lambda c: list(c.seq))
        self.apply(batch_df.sparkSession, batch_id, start, applied, by_ord, offsets, pending_ops)

    def hold_back(self, events, pending, fetched):
        """The records (topic, partition, offset) this batch must not apply yet: those whose cluster
        time is after the last one fetched from a partition that has more records in Kafka, since
        that partition's next records may come before them (docs/spark.md, "Order across topics")."""
        if len(fetched) < 2:
            return set()
        fetched_end = {}
        for e in events:
            fetched_end[(e.topic, e.partition)] = max(e.offset + 1, fetched_end.get((e.topic, e.partition), 0))
        behind_partitions = partitions_behind(self.kafka, fetched_end)
        last_ct = {}
        for e in events:
            if e.ct[0] is not None:
                last_ct[(e.topic, e.partition)] = max(e.ct, last_ct.get((e.topic, e.partition), e.ct))
        behind = [last_ct[tp] for tp in behind_partitions if tp in last_ct]
        if not behind:
            return set()
        watermark = min(behind)
        return {e.where for e in events if e.ct[0] is not None and e.ct > watermark}

    def pending_statements(self, batch_id, events, pending, held):
        """The statements that record, with the batch's first transaction, what it holds back and
        which held records it applied."""
        was_pending = {(t, p, o) for t, p, o, _, _, _ in pending}
        ops = [("DELETE FROM _m2m_spark_pending WHERE job = %s AND released_by < %s", (self.job, batch_id))]
        for e in events:
            if e.where in was_pending and e.where not in held:
                ops.append(("UPDATE _m2m_spark_pending SET released_by = %s WHERE job = %s AND topic = %s "
                            "AND `partition` = %s AND `offset` = %s", (batch_id, self.job, *e.where)))
            elif e.where in held and e.where not in was_pending:
                ops.append(("INSERT INTO _m2m_spark_pending (job, topic, `partition`, `offset`, held_by, `key`, value) "
                            "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (self.job, *e.where, batch_id, _utf8(e.raw_key), _utf8(e.raw_value))))
        return ops

    def apply(self, spark, batch_id, start, events, by_ord, offsets, pending_ops):
        segments, current = [], []
        for e in events:
            current.append(e)
            if e.event in ("drop", "rename", "dropDatabase"):
                segments.append(current)
                current = []
        if current or not segments:
            segments.append(current)
        catalog = self.read_catalog()
        offsets_json = json.dumps(offsets, sort_keys=True)
        for k in range(start // 2, len(segments)):
            # A segment whose rows were committed before a crash is not mapped again: only its
            # collection operation (idempotent against the catalog just read) is redone.
            redo_op_only = k == start // 2 and start % 2 == 1
            last = k == len(segments) - 1
            catalog, seg = self.write_segment(spark, batch_id, k, segments[k], catalog, by_ord, redo_op_only,
                                              pending_ops if k == 0 else [], last, offsets_json)
            with self.conn.cursor() as cur:
                for sql in render.collection_statements(seg.collection_op):
                    cur.execute(sql)
                if seg.collection_op is not None:
                    self._record(cur, batch_id, 2 * k + 2, last, offsets_json)

    def read_catalog(self):
        with self.conn.cursor() as cur:
            cur.execute(*mp.Catalog.query(self.mysql["database"]))
            return mp.Catalog.from_rows(cur.fetchall())

    def map_segment(self, events, catalog, by_ord, redo_op_only, refused, coalesce):
        """The segment's events mapped against `catalog` (which takes the new schema): the Segment,
        the events quarantined with why, and the event that asked for each of the Segment's schema
        changes. Events in `refused` ({ord: MySQL error}) are quarantined, not mapped."""
        seg, quarantined, owners = mp.Segment(coalesce), [], []
        for e in events:
            if e.error or e.ord in refused:
                quarantined.append((e, e.error or refused[e.ord]))
                continue
            try:
                if e.event in ("drop", "rename", "dropDatabase"):
                    seg.collection_op = mp.map_collection_event(self.cfg, catalog, e)
                elif not redo_op_only and e.event != "invalidate":
                    op, changes = mp.map_event(self.cfg, catalog, e, by_ord.get(e.ord, []))
                    if op.kind == "needs_full":
                        raise mp.MappingFailure(f"{op.label}: needs the full document ({op.reason})")
                    seg.add(op, changes, catalog, e)
                    owners += [e] * len(changes)
            except mp.MappingFailure as err:
                quarantined.append((e, str(err)))
        return seg, quarantined, owners

    def write_segment(self, spark, batch_id, k, events, catalog, by_ord, redo_op_only, pending_ops, last,
                      offsets_json):
        """Segment k: its DDL, then one transaction with its rows, its quarantined events and the
        progress row 2k+1. Returns the catalog after the segment and the mapped Segment.

        An event whose statements MySQL refuses (`_event_error`) is quarantined and the others are
        applied, as the native engine does (docs/spark.md, "Quarantine"). Refused DDL names its event
        at once: the segment is mapped again without it, against the schema MySQL now has. Refused
        rows roll the transaction back; it is redone with the same mapping, one document operation
        per event, each behind a savepoint that the refused event's statements are rolled back to.
        Either way the rows, the quarantine rows and the progress row commit together, so a replay
        after a crash finds all of them or none, and MySQL refuses the same event again."""
        refused, isolate, ddl_done = {}, False, False
        while True:
            before = catalog
            catalog = before.copy()
            seg, quarantined, owners = self.map_segment(events, catalog, by_ord, redo_op_only, refused, not isolate)
            with self.conn.cursor() as cur:
                failed = None if ddl_done else self.run_ddl(cur, seg.changes, owners)
            if failed:
                e, why = failed
                refused[e.ord] = why
                log.warning("MySQL refused a schema change of %s[%s]@%s: %s", *e.where, why)
                self.reopen()
                catalog = self.read_catalog()
                continue
            if redo_op_only:
                return catalog, seg
            try:
                self.write_rows(spark, batch_id, k, catalog, seg, quarantined, pending_ops, last, offsets_json,
                                refused if isolate else None)
                return catalog, seg
            except _Refused as r:  # isolating, and MySQL closed the connection on refusing the event
                refused[r.event.ord] = r.why
                self.reopen()
                catalog, isolate, ddl_done = self.read_catalog(), True, False
            except pymysql.err.MySQLError as err:
                if isolate or not _event_error(err):
                    raise
                log.warning("MySQL refused a statement of batch %s segment %s (%s); redoing it one event at a time",
                            batch_id, k, _why(err))
                self.reopen()
                # The same mapping again (its DDL ran already), one operation per event.
                catalog, isolate, ddl_done = before, True, True

    @staticmethod
    def run_ddl(cur, changes, owners):
        """Runs the schema changes; returns (event, why) for the first one MySQL refuses with an
        error about the event (too many columns, a row too wide ...), None when all ran."""
        for ch, e in zip(changes, owners):
            try:
                try:
                    cur.execute(render.schema_change(ch))
                except pymysql.err.MySQLError as err:
                    if ch.kind != "add" or not err.args or err.args[0] not in INSTANT_REFUSED:
                        raise
                    cur.execute(render.schema_change(ch, instant_add_column=False))
            except pymysql.err.MySQLError as err:
                if not _event_error(err):
                    raise
                return e, _why(err)
        return None

    def reopen(self):
        """Rolls back, or connects again if MySQL closed the connection (it does on a packet too large)."""
        try:
            self.conn.rollback()
        except pymysql.err.MySQLError:
            with contextlib.suppress(pymysql.err.MySQLError):
                self.conn.close()
            self.conn = self.connect()

    def write_rows(self, spark, batch_id, k, catalog, seg, quarantined, pending_ops, last, offsets_json, refused):
        """The transaction of segment k. refused is None: the segment's statements as rendered.
        Otherwise (isolating) each event's own, behind a savepoint; an event MySQL refuses is rolled
        back to it, added to `refused` and quarantined."""
        with self.conn.cursor() as cur:
            plans = transforms_mod.plan(spark, cur, self.mysql["database"], self.cfg.transforms, catalog, seg)
            self.conn.begin()
            for sql, params in pending_ops:
                cur.execute(sql, params)
            for p in plans:
                p.before(cur, seg)
            if refused is None:
                for sql in render.data_statements(seg):
                    cur.execute(sql)
            else:
                quarantined = quarantined + self.isolated(cur, seg, refused)
            for p in plans:
                p.after(cur, seg, spark)
            for e, why in quarantined:
                cur.execute("INSERT IGNORE INTO _m2m_spark_quarantine (job, batch_id, topic, `partition`, "
                            "`offset`, error, value) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                            (self.job, batch_id, e.topic, e.partition, e.offset, why, e.raw_value))
                log.warning("quarantined %s[%s]@%s: %s", e.topic, e.partition, e.offset, why)
            self._record(cur, batch_id, 2 * k + 1, last and seg.collection_op is None, offsets_json)
            self.conn.commit()

    @staticmethod
    def isolated(cur, seg, refused):
        """Runs the statements of a segment mapped with coalesce=False event by event; returns the
        events MySQL refused, with why."""
        out = []
        for op, e in zip(seg.docs, seg.owners):  # an event maps to one document operation
            one = mp.Segment(coalesce=False)
            one.docs, one.tables = [op], seg.tables
            cur.execute("SAVEPOINT m2m_event")
            try:
                for sql in render.data_statements(one):
                    cur.execute(sql)
            except pymysql.err.MySQLError as err:
                if not _event_error(err):
                    raise
                why = _why(err)
                try:
                    cur.execute("ROLLBACK TO SAVEPOINT m2m_event")
                except pymysql.err.MySQLError:
                    raise _Refused(e, why) from err
                refused[e.ord] = why
                out.append((e, why))
        return out

    def _record(self, cur, batch_id, segment, complete, offsets_json):
        cur.execute("INSERT INTO _m2m_spark_batches (job, batch_id, segment, complete, offsets, updated_at) "
                    "VALUES (%s,%s,%s,%s,%s,NOW(3)) ON DUPLICATE KEY UPDATE batch_id=VALUES(batch_id), "
                    "segment=VALUES(segment), complete=VALUES(complete), offsets=VALUES(offsets), "
                    "updated_at=VALUES(updated_at)", (self.job, batch_id, segment, int(complete), offsets_json))
