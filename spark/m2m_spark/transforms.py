"""User SQL transforms (docs/spark.md, "Transforms"): a Spark SQL statement over a mapped table whose
result the job keeps in a table of its own, in the transaction of the batch that changed its input.

The mapped (source) table stays the exact replica of the collection; the result is recomputed from
it, never patched. Per segment of a batch, for each transform whose source the segment touches:

1. before the segment's rows are written, the *groups* (values of `key`) of the source rows the
   segment touches, i.e. the rows of its documents' keys: the before-image of the groups;
2. the rows are written; the groups of the same rows again (the after-image);
3. every source row of those groups, as MySQL now holds them inside the transaction, becomes a
   temp view named after the source table, the statement runs over it;
4. the result table's rows of those groups are deleted and the statement's result inserted.

So a filter drops a row that stops matching, an aggregate's group loses a row that moved to another
group, and a group left empty disappears: the result always equals the statement run over the whole
source table, restricted to the groups, which is the whole result when the statement is local to
its groups (row by row, or GROUP BY columns that include `key`). All of it is in the batch's one
transaction, so exactly once holds as for the rows. When the result table does not exist yet, the
statement runs once over the whole source table."""
import decimal
import json
import re

from pyspark.sql import types as S

from . import mapping as mp
from . import sqltypes as st
from .sqltypes import T, quote_identifier as qi


class TransformError(Exception):
    """The statement or its result does not fit the rules; the batch fails (fix the mapping, restart)."""


_SPARK_OF = {T.BOOL: S.BooleanType(), T.INT: S.LongType(), T.BIGINT: S.LongType(), T.DOUBLE: S.DoubleType(),
             T.DATETIME: S.TimestampNTZType(), T.BLOB: S.BinaryType(), T.MEDIUMBLOB: S.BinaryType(),
             T.LONGBLOB: S.BinaryType()}


def _spark_type(column):
    # DECIMAL(65,30) does not fit Spark's 38 digits: it is text; CAST it in the statement.
    return _SPARK_OF.get(column.type, S.StringType())


def _mysql_type(name, dtype, key):
    if isinstance(dtype, (S.LongType, S.IntegerType, S.ShortType, S.ByteType)):
        return "BIGINT"
    if isinstance(dtype, (S.DoubleType, S.FloatType)):
        return "DOUBLE"
    if isinstance(dtype, S.DecimalType):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    if isinstance(dtype, S.BooleanType):
        return "TINYINT(1)"
    if isinstance(dtype, (S.TimestampType, S.TimestampNTZType)):
        return "DATETIME(6)"
    if isinstance(dtype, S.DateType):
        return "DATE"
    if isinstance(dtype, S.BinaryType):
        return "VARBINARY(1024)" if key else "LONGBLOB"
    if isinstance(dtype, S.StringType):
        return st.DDL[T.KEYTEXT] if key else "LONGTEXT"
    raise TransformError(f"column {name}: a {dtype.simpleString()} has no MySQL column type; use to_json()")


def _normal(column_type):
    """information_schema's COLUMN_TYPE as _mysql_type spells it (MariaDB adds integer widths)."""
    t = column_type.lower()
    return "TINYINT(1)" if t.startswith("tinyint(1)") else re.sub(r"^(bigint|int)\(\d+\)", r"\1", t).upper()


def _to_spark(value, column):
    if value is None:
        return None
    if column.type == T.BOOL:
        return bool(value)
    if isinstance(value, (bytes, bytearray)) and not isinstance(_spark_type(column), S.BinaryType):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _to_mysql(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


class Plan:
    """One transform within one segment: made before the transaction (its DDL runs then), used
    inside it."""

    def __init__(self, tr, source, root, result_columns, exists):
        self.tr, self.source, self.exists = tr, source, exists
        self.key = tr.key or list(source.primary_key)
        self.columns = result_columns          # [(name, MySQL type)]
        # The source's columns that hold the root key: a child table carries its root's key under
        # the root's column names, with sources "#key <root source>".
        self.selector = [c if source is root else source.find_source("#key " + c.source)
                         for c in (root.find(k) for k in root.primary_key)]
        self.root = root
        # A row-by-row transform of the root: the groups are the documents' keys themselves.
        self.by_document = source is root and [k.lower() for k in self.key] == [k.lower() for k in root.primary_key]
        self.groups = set()

    def _touched(self, seg):
        return [d.key for d in seg.docs if d.table.lower() == self.root.name.lower()
                and d.kind in ("upsert", "delete", "update")]

    def _read_groups(self, cur, keys):
        if self.by_document:
            return {tuple(v.text if not v.is_null else None for _, v in k) for k in keys}
        cols = ",".join(qi(c.name) for c in self.selector)
        items = ["(" + ",".join(st.literal(v, c.type) for c, (_, v) in zip(self.selector, k)) + ")" for k in keys]
        cur.execute(f"SELECT DISTINCT {','.join(qi(k) for k in self.key)} FROM {qi(self.source.name)} "
                    f"WHERE ({cols}) IN ({','.join(items)})")
        return {tuple(r) for r in cur.fetchall()}

    def before(self, cur, seg):
        keys = self._touched(seg)
        if self.exists and keys:
            self.groups |= self._read_groups(cur, keys)

    def after(self, cur, seg, spark):
        keys = self._touched(seg)
        if self.exists and not keys:
            return
        where, params = "", []
        if self.exists:
            self.groups |= self._read_groups(cur, keys)
            if not self.groups:
                return
            terms = []
            for g in sorted(self.groups, key=repr):
                terms.append("(" + " AND ".join(f"{qi(k)} <=> %s" for k in self.key) + ")")
                params.extend(g)
            where = " WHERE " + " OR ".join(terms)
        names = [c.name for c in self.source.columns]
        cur.execute(f"SELECT {','.join(qi(n) for n in names)} FROM {qi(self.source.name)}{where}", params)
        rows = [tuple(_to_spark(v, c) for v, c in zip(r, self.source.columns)) for r in cur.fetchall()]
        spark.createDataFrame(rows, _schema(self.source)).createOrReplaceTempView(self.source.name)
        result = spark.sql(self.tr.sql).collect()
        target = qi(self.tr.table)
        cur.execute(f"DELETE FROM {target}{where}", params)
        if not result:
            return
        at = [result[0].__fields__.index(n) for n, _ in self.columns]
        key_at = [result[0].__fields__.index(k) for k in self.key]
        out = []
        for r in result:
            if any(r[i] is None for i in key_at):
                raise TransformError(f"transform {self.tr.table}: a result row has a NULL key ({', '.join(self.key)}); "
                                     "filter such rows out in the statement")
            out.append(tuple(_to_mysql(r[i]) for i in at))
        cur.executemany(f"INSERT INTO {target} ({','.join(qi(n) for n, _ in self.columns)}) VALUES "
                        f"({','.join(['%s'] * len(at))})", out)


def _schema(table):
    return S.StructType([S.StructField(c.name, _spark_type(c), True) for c in table.columns])


def plan(spark, cur, database, transforms, catalog, seg):
    """The transforms whose source the segment touches, with the DDL of their result tables run
    (DDL commits implicitly, so before the transaction; it is idempotent: a replay runs none)."""
    plans = []
    for tr in transforms.values():
        source = catalog.find(tr.source)
        if source is None or source.collection() is None:
            continue
        root = catalog.find_source(mp.table_source(source.collection(), []))
        if root is None or not any(d.table.lower() == root.name.lower() for d in seg.docs):
            continue
        missing = [k for k in tr.key if source.find(k) is None]
        if missing:
            raise TransformError(f"transform {tr.table}: key column {missing[0]} is not a column of {source.name}")
        spark.createDataFrame([], _schema(source)).createOrReplaceTempView(source.name)
        try:
            schema = spark.sql(tr.sql).schema  # analysed only: no job runs
        except Exception as e:  # noqa: BLE001 - Spark's analysis errors have many classes
            raise TransformError(f"transform {tr.table}: {e}") from e
        key = [k.lower() for k in (tr.key or source.primary_key)]
        names = [f.name for f in schema.fields]
        for k in key:
            if k not in (n.lower() for n in names):
                raise TransformError(f"transform {tr.table}: the result has no column {k} (its key)")
        columns = [(f.name, _mysql_type(f.name, f.dataType, f.name.lower() in key)) for f in schema.fields]
        cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s", (database, tr.table))
        have = {n.lower(): _normal(t) for n, t in cur.fetchall()}
        for ddl in _ddl(tr, source, columns, key, have):
            cur.execute(ddl)
        # An empty result table is (re)computed from the whole source: the first batch after the
        # transform was added, or a replay of it (its CREATE committed, its rows did not). A result
        # that is legitimately empty only costs a full run each time.
        cur.execute(f"SELECT 1 FROM {qi(tr.table)} LIMIT 1")
        exists = cur.fetchone() is not None
        plans.append(Plan(tr, source, root, columns, exists))
    return plans


def _ddl(tr, source, columns, key, have):
    t = qi(tr.table)
    if not have:
        cols = ", ".join(f"{qi(n)} {ty} {'NOT NULL' if n.lower() in key else 'NULL'}" for n, ty in columns)
        pk = ",".join(qi(n) for n, _ in columns if n.lower() in key)
        comment = st.quote_string(json.dumps({"transform_of": source.name}))
        return [f"CREATE TABLE IF NOT EXISTS {t} ({cols}, PRIMARY KEY ({pk})) ENGINE=InnoDB "
                f"DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT={comment}"]
    out = []
    for n, ty in columns:
        null = "NOT NULL" if n.lower() in key else "NULL"
        if n.lower() not in have:
            out.append(f"ALTER TABLE {t} ADD COLUMN {qi(n)} {ty} {null}")
        elif have[n.lower()] != ty:
            out.append(f"ALTER TABLE {t} MODIFY COLUMN {qi(n)} {ty} {null}")
    return out
