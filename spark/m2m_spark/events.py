"""Decodes Kafka records in the change-event format of docs/events.md (and Debezium's MongoDB
events, with or without the JSON converter's schema envelope) with Spark SQL's from_json.

The result has one row per record: where it came from (topic, partition, offset), what happened
(`event`: insert, update, ..., drop, rename) and the documents as canonical Extended JSON strings,
which cells.py takes apart. Documents are never parsed in Python."""
from pyspark.sql import DataFrame, functions as F

from . import cells

_BODY = """
  before STRING, after STRING, op STRING,
  updateDescription STRUCT<updatedFields: STRING, removedFields: ARRAY<STRING>,
                           truncatedArrays: ARRAY<STRUCT<field: STRING, size: BIGINT>>>,
  source STRUCT<db: STRING, collection: STRING, ts_ms: BIGINT, ord: BIGINT>,
  m2m STRUCT<v: INT, event: STRING, document_key: STRING,
             cluster_time: STRUCT<t: BIGINT, i: BIGINT>,
             rename_to: STRUCT<db: STRING, collection: STRING>>"""
# `schema` tells the converter's envelope; `_corrupt_record` (from_json's name for it) holds a value
# that is not a JSON object.
VALUE_SCHEMA = f"STRUCT<{_BODY}, payload STRUCT<{_BODY}>, schema STRING, _corrupt_record STRING>"
KEY_SCHEMA = "STRUCT<id: STRING, payload: STRUCT<id: STRING>>"

# Debezium without our block: op and the presence of updateDescription say what happened.
_EVENT_FROM_OP = """CASE op WHEN 'c' THEN 'insert' WHEN 'r' THEN 'read' WHEN 'd' THEN 'delete'
  WHEN 'u' THEN IF(updateDescription IS NULL, 'replace', 'update') END"""


def decode(records: DataFrame) -> DataFrame:
    """Kafka source rows -> decoded events. A value that is not a JSON object, or an `m2m.v` this
    code does not know, gives `error` (the event goes to quarantine); tombstones (no value, JSON
    null, or the envelope's null payload) give no row, as in the native engine (DecodeEvent)."""
    parsed = records.where(F.col("value").isNotNull()).select(
        "topic", "partition", "offset",
        F.col("value").cast("string").alias("raw_value"), F.col("key").cast("string").alias("raw_key"),
        F.from_json(F.col("key").cast("string"), KEY_SCHEMA, cells.JSON_OPTIONS).alias("k"),
        F.from_json(F.col("value").cast("string"), VALUE_SCHEMA, cells.JSON_OPTIONS).alias("v"))
    tombstone = (F.trim(F.col("raw_value")) == "null") | (
        F.col("v.schema").isNotNull() & F.col("v.payload").isNull() & F.col("v._corrupt_record").isNull())
    # The schema envelope nests the event in `payload`.
    body = F.when(F.col("v.payload").isNotNull(), F.col("v.payload")).otherwise(F.struct(*[
        F.col(f"v.{c}").alias(c) for c in
        ("before", "after", "op", "updateDescription", "source", "m2m")]))
    e = parsed.where(~tombstone).select(
        "topic", "partition", "offset", "raw_value", "raw_key",
        F.coalesce("k.payload.id", "k.id").alias("key_id"), body.alias("b"),
        (F.col("v").isNull() | F.col("v._corrupt_record").isNotNull()).alias("malformed"))
    e = e.select("topic", "partition", "offset", "raw_value", "raw_key", "key_id", "malformed", "b.*")
    return e.selectExpr(
        "topic", "partition", "offset", "raw_value", "raw_key",
        f"coalesce(m2m.event, {_EVENT_FROM_OP}) AS event",
        "source.db AS db", "source.collection AS collection",
        "IF(op = 'd', NULL, after) AS after",
        # documentKey: ours, else {"_id": <key id>} as Debezium keys carry only _id.
        "coalesce(m2m.document_key, concat('{\"_id\": ', key_id, '}')) AS document_key",
        "updateDescription.updatedFields AS updated",
        "coalesce(updateDescription.removedFields, array()) AS removed",
        "transform(coalesce(updateDescription.truncatedArrays, array()), t -> t.field) AS truncated",
        "updateDescription IS NOT NULL AS has_update",
        "m2m.rename_to.collection AS rename_to",
        "coalesce(m2m.cluster_time.t, source.ts_ms DIV 1000) AS ct_t",
        "coalesce(m2m.cluster_time.i, source.ord) AS ct_i",
        """CASE WHEN malformed THEN 'value: not a JSON object'
                WHEN m2m IS NOT NULL AND m2m.v <> 1 THEN concat('value.m2m.v: unknown format version ', m2m.v)
                WHEN coalesce(m2m.event, op) IS NULL THEN 'value.op: missing'
                WHEN m2m.event IS NULL AND op NOT IN ('c', 'r', 'u', 'd')
                  THEN concat('value.op: unsupported operation "', op, '"') END AS error""")
