"""Takes documents apart into cells with Spark SQL (docs/mapping.md, sections 1 and 2).

A cell is one value of one row: the event it came from (`ord`), the child-table levels and array
positions of its row (`levels`, `idx`), its field path inside the row (`path`), its natural type
(`nat`), text form (`text`) and raw bytes (`raw`, binary only). `seq` orders cells as a depth-first
walk of the document would meet them, which is the order that names columns and tables.

Documents are schema-less, so no struct schema can describe them. Instead each level of nesting is
read as `map<string,string>` (raw JSON text of each value, keys in document order) zipped with
`map<string,variant>` (the JSON type of each value, via schema_of_variant); one DataFrame step per
level, iterated until no row has a deeper level. Nothing runs per row in Python."""
from collections import namedtuple

from pyspark.sql import DataFrame, functions as F

from .arrow import collect_tuples
from .config import MappingConfig

# Keys that make a one-key (or $code/$scope, legacy $binary/$type) object a BSON scalar in
# canonical (v2) or legacy (v1) Extended JSON.
_WRAPPERS = ("$oid", "$numberInt", "$numberLong", "$numberDouble", "$numberDecimal", "$date", "$binary",
             "$timestamp", "$regularExpression", "$regex", "$code", "$symbol", "$minKey", "$maxKey",
             "$undefined", "$dbPointer", "$uuid")
_WRAPPER_SET = "array(" + ",".join(f"'{w}'" for w in _WRAPPERS) + ")"


# from_json's options, for every JSON text the job parses: without them Jackson's limit of 20 million
# characters per string turns an event holding a document near 16 MB (its `after` is one string)
# into NULL.
JSON_OPTIONS = {"maxStringLen": str(2 ** 31 - 1)}
_JSON_OPTIONS_SQL = "map(" + ",".join(f"'{k}', '{v}'" for k, v in JSON_OPTIONS.items()) + ")"


def parse(expr, schema):
    """SQL: the JSON text `expr` read as `schema` (e.g. map<string,string>) by from_json."""
    return f"from_json({expr}, '{schema}', {_JSON_OPTIONS_SQL})"


def _first_key(raw):
    """The first key of a JSON object, '' for an empty one. `get`, not `[0]`: under ANSI SQL (Spark
    4's default) an index past the end fails the job, and nothing guarantees that a guard beside it
    (`kind LIKE 'OBJECT%' AND ...`) is evaluated first."""
    return f"coalesce(get(json_object_keys({raw}), 0), '')"


def _is_wrapper_doc(raw, kind):
    """A sub-document, as opposed to a scalar spelled as an object."""
    return f"({kind} LIKE 'OBJECT%' AND NOT array_contains({_WRAPPER_SET}, {_first_key(raw)}))"


def _sql_str_array(items):
    return "array(" + ",".join("'" + i.replace("\\", "\\\\").replace("'", "\\'") + "'" for i in items) + ")" \
        if items else "CAST(array() AS ARRAY<STRING>)"


def classify(df, raw, kind, out):
    """Adds column `out`: struct(nat, text, raw) of the JSON value whose raw text and variant kind
    are in columns `raw` and `kind`. `nat` names the natural type; DOUBLE and DECIMAL texts are
    finished on the driver (the shortest round trip and the DECIMAL(65,30) fit need exact decimal
    arithmetic, which Spark SQL lacks past 38 digits)."""
    staged = df.selectExpr("*", f"{_first_key(raw)} AS _wk").selectExpr(
        "*", f"{parse(raw, 'map<string,string>')}[_wk] AS _wv").selectExpr(
        "*", f"{parse('_wv', 'map<string,string>')} AS _inner", f"{parse(raw, 'map<string,string>')} AS _outer")
    return staged.selectExpr("*", _classify(raw, kind) + f" AS {out}").drop("_wk", "_wv", "_inner", "_outer")


def _classify(raw, kind):
    wk, wv, inner = "_wk", "_wv", "_inner"
    ms = f"""CASE WHEN {wv} LIKE '{{%' THEN CAST({inner}['$numberLong'] AS BIGINT)
                  WHEN {wv} RLIKE '^-?[0-9]+$' THEN CAST({wv} AS BIGINT)
                  ELSE unix_millis(to_timestamp({wv})) END"""
    date_text = f"regexp_replace(date_format(timestamp_millis({ms}), 'yyyy-MM-dd HH:mm:ss.SSS'), '^\\\\+', '')"
    b64 = f"IF({wv} LIKE '{{%', {inner}['base64'], {wv})"
    subtype = f"lpad(lower(IF({wv} LIKE '{{%', {inner}['subType'], _outer['$type'])), 2, '0')"
    uuid = f"lower(regexp_replace(hex(unbase64({b64})), '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '$1-$2-$3-$4-$5'))"
    relaxed = (f"regexp_replace(regexp_replace({raw}, "
               r"""'\\{"\\$number(Int|Long)":"(-?[0-9]+)"\\}', '$2'), """
               r"""'\\{"\\$numberDouble":"(-?[0-9][0-9.eE+-]*)"\\}', '$1')""")
    return f"""CASE
      WHEN {kind} = 'VOID' THEN NULL
      WHEN {kind} LIKE 'OBJECT%' AND array_contains({_WRAPPER_SET}, {wk}) THEN CASE {wk}
        WHEN '$oid' THEN named_struct('nat', 'OID', 'text', {wv}, 'raw', CAST(NULL AS BINARY))
        WHEN '$numberInt' THEN named_struct('nat', 'INT', 'text', {wv}, 'raw', CAST(NULL AS BINARY))
        WHEN '$numberLong' THEN named_struct('nat', 'BIGINT', 'text', {wv}, 'raw', CAST(NULL AS BINARY))
        WHEN '$numberDouble' THEN named_struct('nat', 'DOUBLE', 'text', {wv}, 'raw', CAST(NULL AS BINARY))
        WHEN '$numberDecimal' THEN named_struct('nat', 'DECIMAL', 'text', {wv}, 'raw', CAST(NULL AS BINARY))
        WHEN '$date' THEN named_struct(
          'nat', IF({ms} BETWEEN -30610224000000 AND 253402300799999, 'DATETIME', 'TEXT'),
          'text', {date_text}, 'raw', CAST(NULL AS BINARY))
        WHEN '$binary' THEN IF({subtype} = '04' AND octet_length(unbase64({b64})) = 16,
          named_struct('nat', 'UUID', 'text', {uuid}, 'raw', CAST(NULL AS BINARY)),
          named_struct('nat', 'BLOB', 'text',
                       concat('{{"$binary":{{"base64":"', {b64}, '","subType":"', {subtype}, '"}}}}'),
                       'raw', unbase64({b64})))
        ELSE named_struct('nat', 'TEXT', 'text', {raw}, 'raw', CAST(NULL AS BINARY)) END
      WHEN {kind} = 'STRING' THEN named_struct('nat', 'TEXT', 'text', {raw}, 'raw', CAST(NULL AS BINARY))
      WHEN {kind} = 'BOOLEAN' THEN named_struct('nat', 'BOOL', 'text', IF({raw} = 'true', '1', '0'), 'raw', CAST(NULL AS BINARY))
      WHEN {kind} IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT') THEN named_struct(
        'nat', IF(CAST({raw} AS BIGINT) BETWEEN -2147483648 AND 2147483647, 'INT', 'BIGINT'),
        'text', {raw}, 'raw', CAST(NULL AS BINARY))
      WHEN {kind} LIKE 'DECIMAL%' OR {kind} IN ('DOUBLE', 'FLOAT') THEN
        named_struct('nat', 'DOUBLE', 'text', {raw}, 'raw', CAST(NULL AS BINARY))
      ELSE named_struct('nat', 'JSON', 'text', {relaxed}, 'raw', CAST(NULL AS BINARY)) END"""


CELL_COLUMNS = ["ord", "seq", "levels", "idx", "path", "nat", "text", "raw"]
# The fold reads every field of every cell by name: a namedtuple's fields are plain attributes,
# a pyspark Row's go through a lookup in Python.
Cell = namedtuple("Cell", CELL_COLUMNS)


def cells(events: DataFrame, cfg: MappingConfig) -> list:
    """events(ord, collection, after, updated) -> the cells (Cells) of every upsert (`after`) and
    delta (`updated`), collected. Marker cells: nat 'ROW' starts a child row (its values follow), an
    empty `path` is an array element that is not a document (`_value`), 'EMPTY' is an empty array
    (JSON `[]` or nothing, depending on whether the child table exists by then).

    One Spark job per level. Each level is a lazy localCheckpoint: the job that collects the level's
    cells also stores its rows, which the cells' branches share and the next level reads, so no
    query plan holds the levels before it (analysing and describing those growing plans, not
    running them, was where a small batch spent its time) and nothing is computed twice."""
    o = cfg.options
    nodes = events.selectExpr(
        "ord", "collection", "coalesce(after, updated) AS json", "after IS NULL AS delta",
        "CAST(array() AS ARRAY<INT>) AS seq", "CAST(array() AS ARRAY<ARRAY<STRING>>) AS levels",
        "CAST(array() AS ARRAY<BIGINT>) AS idx", "CAST(array() AS ARRAY<STRING>) AS path",
        "0 AS depth", "true AS root", "true AS top").where("json IS NOT NULL")
    out = []
    for _ in range(64):  # flatten_depth <= 32 and arrays nest: a bound, not a tuning knob
        e = nodes.selectExpr(
            "*", f"posexplode(arrays_zip(map_keys({parse('json', 'map<string,string>')}), "
            f"map_values({parse('json', 'map<string,string>')}), "
            f"map_values({parse('json', 'map<string,variant>')}))) AS (pos, entry)").selectExpr(
            "ord", "collection", "delta", "seq", "levels", "idx", "path", "depth", "root", "top", "pos",
            "entry['0'] AS key", "entry['1'] AS raw", "schema_of_variant(entry['2']) AS kind",
            # A delta's top-level keys are dotted paths (updatedFields).
            "IF(top AND delta, concat(path, split(entry['0'], '[.]', -1)), concat(path, array(entry['0']))) AS p")
        e = e.selectExpr("*", "IF(top AND delta, size(p) - 1, depth) AS d", "array_join(p, '.') AS dotted")
        e = e.selectExpr("*", *_yaml_rules(cfg))
        e = e.where("NOT skip").selectExpr(
            "*", f"NOT explicit AND {_is_wrapper_doc('raw', 'kind')} AS is_doc",
            "NOT explicit AND kind LIKE 'ARRAY%' AS is_array")
        e = e.selectExpr(
            "*", f"is_array AND exists(arrays_zip({parse('raw', 'array<string>')}, {parse('raw', 'array<variant>')}), "
            "z -> " + _is_wrapper_doc("z['0']", "schema_of_variant(z['1'])") + ") AS any_doc",
            f"IF(is_array, size({parse('raw', 'array<string>')}), 0) AS n")
        scalar_table = "true" if o.scalar_arrays == "table" else "false"
        e = e.selectExpr("*", f"is_array AND (any_doc OR (n > 0 AND {scalar_table})) AS child",
                         f"is_doc AND d < {o.flatten_depth} AS descend").localCheckpoint(eager=False)
        value = classify(e.where("NOT child AND NOT descend AND kind <> 'VOID'"), "raw", "kind", "c").selectExpr(
            "ord", "concat(seq, array(pos)) AS seq", "levels", "idx", "p AS path",
            "IF(is_array AND n = 0, named_struct('nat', 'EMPTY', 'text', '[]', 'raw', CAST(NULL AS BINARY)), c) AS v"
        ).selectExpr(*CELL_COLUMNS[:5], "v.nat", "v.text", "v.raw")
        deeper = e.where("descend").selectExpr(
            "ord", "collection", "raw AS json", "delta", "concat(seq, array(pos)) AS seq", "levels", "idx",
            "p AS path", "d + 1 AS depth", "root", "false AS top")
        elements = e.where("child").selectExpr(
            "ord", "collection", "delta", "concat(seq, array(pos)) AS seq",
            "concat(levels, array(p)) AS levels", "idx",
            f"posexplode(arrays_zip({parse('raw', 'array<string>')}, {parse('raw', 'array<variant>')})) AS (epos, el)"
        ).selectExpr("*", "el['0'] AS raw", "schema_of_variant(el['1']) AS kind").selectExpr(
            "*", f"{_is_wrapper_doc('raw', 'kind')} AS is_doc",
            "concat(seq, array(epos)) AS eseq", "concat(idx, array(epos)) AS eidx")
        rows = elements.selectExpr(
            "ord", "concat(eseq, array(-1)) AS seq", "levels", "eidx AS idx", "CAST(array() AS ARRAY<STRING>) AS path",
            "'ROW' AS nat", "CAST(NULL AS STRING) AS text", "CAST(NULL AS BINARY) AS raw")
        scalars = classify(elements.where("NOT is_doc AND kind <> 'VOID'"), "raw", "kind", "v").selectExpr(
            "ord", "concat(eseq, array(0)) AS seq", "levels", "eidx AS idx", "CAST(array() AS ARRAY<STRING>) AS path",
            "v.nat", "v.text", "v.raw")
        children = elements.where("is_doc").selectExpr(
            "ord", "collection", "raw AS json", "delta", "eseq AS seq", "levels", "eidx AS idx",
            "CAST(array() AS ARRAY<STRING>) AS path", "0 AS depth", "false AS root", "false AS top")
        next_level = deeper.unionByName(children)
        # One 'MORE' row says whether there is a next level, in the same job as the cells.
        more = next_level.limit(1).selectExpr(
            "ord", "seq", "levels", "idx", "path", "'MORE' AS nat", "CAST(NULL AS STRING) AS text",
            "CAST(NULL AS BINARY) AS raw")
        got = [Cell._make(c) for c in collect_tuples(value.unionByName(rows).unionByName(scalars).unionByName(more))]
        out.extend(c for c in got if c.nat != "MORE")
        if all(c.nat != "MORE" for c in got):
            break
        nodes = next_level
    return out


def _yaml_rules(cfg):
    """Columns skip / explicit for the YAML collection maps (root-row paths only, section 8)."""
    skip, explicit = [], []
    for name, cm in cfg.collections.items():
        coll = "collection = '" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
        sources = [c.source for c in cm.columns]
        conds = [f"array_contains({_sql_str_array(cm.exclude + cm.primary_key)}, dotted)"]
        if cm.unmapped == "ignore":
            conds.append(f"NOT array_contains({_sql_str_array(sources)}, dotted) AND NOT exists("
                         f"{_sql_str_array(sources)}, s -> startswith(s, concat(dotted, '.')))")
        skip.append(f"({coll} AND ({' OR '.join(conds)}))")
        explicit.append(f"({coll} AND array_contains({_sql_str_array(sources)}, dotted))")
    default_skip = "array_contains(array('_id'), dotted)"
    known = " OR ".join("collection = '" + n.replace("\\", "\\\\").replace("'", "\\'") + "'" for n in cfg.collections)
    skip_expr = " OR ".join(skip + [f"(NOT ({known}) AND {default_skip})" if known else default_skip])
    return [f"root AND ({skip_expr}) AS skip",
            f"root AND ({' OR '.join(explicit) if explicit else 'false'}) AS explicit"]
