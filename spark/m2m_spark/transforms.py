"""User SQL transforms (docs/spark.md, "Transforms"): a Spark SQL statement over a mapped table whose
result the job keeps in a table of its own.

The mapped (source) table stays the exact replica of the collection, written by the C++ core on the
executors; the result is recomputed from the whole replica on the driver after every micro-batch
that had records, never patched: DELETE and INSERT in one MySQL transaction. So a filter drops a
row that stops matching, an aggregate's group loses a row that moved, and a group left empty
disappears, through updates, deletes and restarts (a replayed batch recomputes again; the result
only depends on the replica). The cost is one read of each source table per micro-batch: meant for
tables up to a few million rows."""
import decimal
import json
import logging
import re
from dataclasses import dataclass, field

import pymysql
import yaml
from pyspark.sql import types as S

log = logging.getLogger("m2m_spark")

# The session of the core's connections (core/src/mysql_client.cc): UTC, strict, backslash escapes.
SESSION_SETUP = ("SET time_zone = '+00:00', "
                 "sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'")


class TransformError(ValueError):
    """A transform does not fit the rules; the batch fails (fix the mapping, restart)."""


@dataclass(frozen=True)
class Transform:
    """`sql` runs in Spark SQL over the rows of the mapped table `source` (a temp view of that name);
    its result is kept in `table`, whose primary key is `key` (columns the result carries; empty:
    the source's primary key, a row-by-row transform)."""
    table: str
    source: str
    sql: str
    key: tuple = field(default_factory=tuple)


def parse(mapping_text):
    """The transforms of a YAML mapping (its top-level `transforms`; the rest is the core's)."""
    doc = yaml.safe_load(mapping_text) or {}
    specs = doc.get("transforms") or {} if isinstance(doc, dict) else {}
    if not isinstance(specs, dict):
        raise TransformError("mapping: transforms must be a map of result table -> {from, sql, key}")
    out = {}
    for table, spec in specs.items():
        table, where = str(table), f"mapping: transforms.{table}"
        if not isinstance(spec, dict):
            raise TransformError(f"{where}: must be a map with from, sql and optionally key")
        unknown = set(spec) - {"from", "sql", "key"}
        if unknown:
            raise TransformError(f"{where}: unknown key {sorted(unknown)[0]}")
        if not spec.get("from") or not spec.get("sql"):
            raise TransformError(f"{where}: needs `from` (the mapped table it reads) and `sql`")
        if len(table) > 64 or table.startswith("_m2m"):
            raise TransformError(f"{where}: a table name of at most 64 characters, not starting with _m2m")
        key = spec.get("key") or []
        tr = Transform(table, str(spec["from"]), str(spec["sql"]), tuple([key] if isinstance(key, str) else key))
        if tr.source.lower() == table.lower():
            raise TransformError(f"{where}: reads and writes the same table")
        out[table] = tr
    targets = {t.lower() for t in out}
    for tr in out.values():
        if tr.source.lower() in targets:
            raise TransformError(f"mapping: transforms.{tr.table}: reads {tr.source}, the result of another "
                                 "transform; transforms read mapped tables only")
    return out


_SPARK_OF = {"bigint": S.LongType(), "int": S.LongType(), "smallint": S.LongType(), "mediumint": S.LongType(),
             "double": S.DoubleType(), "float": S.DoubleType(), "datetime": S.TimestampNTZType(),
             "timestamp": S.TimestampNTZType(), "blob": S.BinaryType(), "mediumblob": S.BinaryType(),
             "longblob": S.BinaryType(), "tinyblob": S.BinaryType(), "varbinary": S.BinaryType(),
             "binary": S.BinaryType()}


def _spark_type(data_type, column_type):
    # DECIMAL(65,30) does not fit Spark's 38 digits: it is text; CAST it in the statement.
    if data_type == "tinyint":
        return S.BooleanType() if column_type.startswith("tinyint(1)") else S.LongType()
    return _SPARK_OF.get(data_type, S.StringType())


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
        return "VARBINARY(1024)" if key else "LONGTEXT"
    raise TransformError(f"column {name}: a {dtype.simpleString()} has no MySQL column type; use to_json()")


def _normal(column_type):
    """information_schema's COLUMN_TYPE as _mysql_type spells it (MariaDB adds integer widths)."""
    t = column_type.lower()
    return "TINYINT(1)" if t.startswith("tinyint(1)") else re.sub(r"^(bigint|int)\(\d+\)", r"\1", t).upper()


def _to_spark(value, dtype):
    if value is None:
        return None
    if isinstance(dtype, S.BooleanType):
        return bool(value)
    if isinstance(value, (bytes, bytearray)) and not isinstance(dtype, S.BinaryType):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _to_mysql(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _qi(name):
    return "`" + name.replace("`", "``") + "`"


def connect(mysql):
    """A connection with the core's session and TLS settings (m2m_core's mysql options)."""
    mode = mysql.get("ssl_mode", "DISABLED")
    tls = {} if mode == "DISABLED" else {
        "ssl": {"ca": mysql.get("ssl_ca"), "cert": mysql.get("ssl_cert"), "key": mysql.get("ssl_key")},
        "ssl_verify_cert": mode in ("VERIFY_CA", "VERIFY_IDENTITY"),
        "ssl_verify_identity": mode == "VERIFY_IDENTITY"}
    return pymysql.connect(host=mysql.get("host", "127.0.0.1"), port=mysql.get("port", 3306),
                           user=mysql.get("user", "mongo2mysql"), password=mysql.get("password", ""),
                           database=mysql["database"], charset="utf8mb4", autocommit=True,
                           init_command=SESSION_SETUP, **tls)


def refresh(spark, mysql, transforms):
    """Recomputes every transform from its whole source table; a source not mapped yet is skipped."""
    if not transforms:
        return
    conn = connect(mysql)
    try:
        for tr in transforms.values():
            _refresh(spark, conn, mysql["database"], tr)
    finally:
        conn.close()


def _refresh(spark, conn, database, tr):
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLUMN_KEY FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, tr.source))
        source = cur.fetchall()
    if not source:
        return
    schema = S.StructType([S.StructField(n, _spark_type(d.lower(), t.lower()), True) for n, d, t, _ in source])
    key = [k.lower() for k in (tr.key or [n for n, _, _, k in source if k == "PRI"])]
    with conn.cursor() as cur:
        cur.execute(f"SELECT {','.join(_qi(n) for n, _, _, _ in source)} FROM {_qi(tr.source)}")
        rows = [tuple(_to_spark(v, f.dataType) for v, f in zip(r, schema.fields)) for r in cur.fetchall()]
    spark.createDataFrame(rows, schema).createOrReplaceTempView(tr.source)
    try:
        result = spark.sql(tr.sql)
        fields = result.schema.fields
        out = result.collect()
    except Exception as e:  # noqa: BLE001 - Spark's analysis errors have many classes
        raise TransformError(f"transform {tr.table}: {e}") from e
    names = [f.name for f in fields]
    for k in key:
        if k not in (n.lower() for n in names):
            raise TransformError(f"transform {tr.table}: the result has no column {k} (its key)")
    columns = [(f.name, _mysql_type(f.name, f.dataType, f.name.lower() in key)) for f in fields]
    key_at = [i for i, n in enumerate(names) if n.lower() in key]
    values = []
    for r in out:
        if any(r[i] is None for i in key_at):
            raise TransformError(f"transform {tr.table}: a result row has a NULL key ({', '.join(key)}); "
                                 "filter such rows out in the statement")
        values.append(tuple(_to_mysql(v) for v in r))
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s", (database, tr.table))
        for ddl in _ddl(tr, columns, key, {n.lower(): _normal(t) for n, t in cur.fetchall()}):
            cur.execute(ddl)  # DDL commits implicitly: before the transaction, idempotent
        cur.execute("BEGIN")
        cur.execute(f"DELETE FROM {_qi(tr.table)}")
        if values:
            cur.executemany(f"INSERT INTO {_qi(tr.table)} ({','.join(_qi(n) for n, _ in columns)}) VALUES "
                            f"({','.join(['%s'] * len(columns))})", values)
        cur.execute("COMMIT")
    log.info("transform %s: %s rows from %s rows of %s", tr.table, len(values), len(rows), tr.source)


def _ddl(tr, columns, key, have):
    t = _qi(tr.table)
    if not have:
        cols = ", ".join(f"{_qi(n)} {ty} {'NOT NULL' if n.lower() in key else 'NULL'}" for n, ty in columns)
        pk = ",".join(_qi(n) for n, _ in columns if n.lower() in key)
        comment = pymysql.converters.escape_string(json.dumps({"transform_of": tr.source}))
        return [f"CREATE TABLE IF NOT EXISTS {t} ({cols}, PRIMARY KEY ({pk})) ENGINE=InnoDB "
                f"DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='{comment}'"]
    out = []
    for n, ty in columns:
        null = "NOT NULL" if n.lower() in key else "NULL"
        if n.lower() not in have:
            out.append(f"ALTER TABLE {t} ADD COLUMN {_qi(n)} {ty} {null}")
        elif have[n.lower()] != ty:
            out.append(f"ALTER TABLE {t} MODIFY COLUMN {_qi(n)} {ty} {null}")
    return out
