"""What became of the corpus in MySQL, per class: root rows against documents, events apply
quarantined, events capture sent to its dead-letter topic, verify's differences, and the chosen
values (corpus.Check) looked up through the column and table comments (docs/mapping.md, section 4),
so a check finds its value wherever the mapping put it: its own column, inside a JSON column of an
ancestor path, or in a child table's row."""
import json
import re
from collections import defaultdict
from decimal import Decimal

from bson import ObjectId


def source(path):
    """A column or table comment's JSON, as the mapping writes it."""
    return json.dumps(path, ensure_ascii=False, separators=(",", ":"))


def normalized(comment):
    """A comment with its JSON written as source() writes it: MySQL keeps comments in utf8mb3, so
    the mapping may escape characters beyond the BMP (\\ud83d\\ude00) where source() keeps UTF-8."""
    head, body = ("", comment)
    for prefix in ("json ", "#key "):
        if comment.startswith(prefix):
            head, body = prefix, comment[len(prefix):]
    if body.startswith("["):
        try:
            body = source(json.loads(body))
        except ValueError:
            pass
    return head + body


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def key_text(_id):
    """The root key column's text of a simple _id (int, string, ObjectId): docs/mapping.md, "Key
    columns"; a string that reads like another type's key text is a JSON string literal."""
    if isinstance(_id, ObjectId):
        return str(_id)
    if isinstance(_id, str) and (re.fullmatch(r"-?[0-9]+|[0-9a-f]{24}|null|true|false", _id) or _id[:1] in ("{", "[", '"')):
        return json.dumps(_id, ensure_ascii=False, separators=(",", ":"))
    return _id


class Schema:
    """Tables and columns of a database with their comments."""

    def __init__(self, conn, database):
        self.conn, self.database = conn, database
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                        (database,))
            self.tables = {normalized(text(c)): text(t) for t, c in cur.fetchall()}   # comment -> table
            cur.execute("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                        "WHERE TABLE_SCHEMA=%s ORDER BY ORDINAL_POSITION", (database,))
            self.columns = defaultdict(list)                                  # table -> [(column, comment)]
            for t, c, comment in cur.fetchall():
                self.columns[text(t)].append((text(c), normalized(text(comment))))

    def root(self, collection):
        return self.tables.get(source([collection]))

    def count(self, table):
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{self.database}`.`{table.replace('`', '``')}`")
            return cur.fetchone()[0]

    def row(self, table, key, positions):
        """The row of `table` for root key `key` and array positions; None when absent."""
        cols = self.columns[table]
        key_col = next((c for c, m in cols if m in (source(["_id"]), "#key " + source(["_id"]))), None)
        if key_col is None:
            return None, f"table {table} has no _id key column"
        where, params = [f"`{key_col}` = %s"], [key_text(key)]
        for level, pos in enumerate(positions, 1):
            idx_col = next((c for c, m in cols if m == f"#idx{level}"), None)
            if idx_col is None:
                return None, f"table {table} has no #idx{level} column"
            where.append(f"`{idx_col}` = %s")
            params.append(pos)
        with self.conn.cursor() as cur:
            names = ", ".join(f"`{c.replace('`', '``')}`" for c, _ in cols)
            cur.execute(f"SELECT {names} FROM `{self.database}`.`{table.replace('`', '``')}` WHERE "
                        + " AND ".join(where), params)
            rows = cur.fetchall()
        if not rows:
            return None, f"no row in {table} for _id={key!r}{' at ' + str(positions) if positions else ''}"
        if len(rows) > 1:
            return None, f"{len(rows)} rows in {table} for _id={key!r}"
        return dict(zip([c for c, _ in cols], rows[0])), None


_MISSING = object()


def _navigate(value, rest):
    for comp in rest:
        if isinstance(value, dict) and isinstance(comp, str) and comp in value:
            value = value[comp]
        elif isinstance(value, list) and isinstance(comp, int) and comp < len(value):
            value = value[comp]
        else:
            return _MISSING
    return value


def find(schema, collection, _id, path):
    """(value, where) of the value at `path` of document `_id`, or (_MISSING, why not)."""
    table_source = [collection]
    table = schema.root(collection)
    if table is None:
        return _MISSING, f"no root table for {collection}"
    positions, rel = [], []
    for comp in path:
        if isinstance(comp, int) and rel:
            child_source = table_source + [rel]
            child = schema.tables.get(source(child_source))
            if child is not None:
                table_source, table, rel = child_source, child, []
                positions.append(comp)
                continue
        rel.append(comp)
    row, why = schema.row(table, _id, positions)
    if row is None:
        return _MISSING, why
    comments = schema.columns[table]
    if not rel:
        col = next((c for c, m in comments if m == "#value"), None)
        return (row[col], f"{table}.{col}") if col else (_MISSING, f"{table} has no #value column")
    if all(isinstance(c, str) for c in rel):
        col = next((c for c, m in comments if m == source(rel)), None)
        if col is not None:
            return row[col], f"{table}.{col}"
    bags = []
    for col, comment in comments:
        body = comment[5:] if comment.startswith("json ") else comment
        if body.startswith("["):
            prefix = json.loads(body)
            # A JSON column of an ancestor path, or a text column holding an ancestor's JSON (a value
            # nested deeper than the server's JSON takes).
            if rel[:len(prefix)] == prefix and row[col] is not None:
                try:
                    value = _navigate(json.loads(text(row[col])), rel[len(prefix):])
                except ValueError:
                    value = _MISSING
                if value is not _MISSING:
                    return value, f"{table}.{col} (JSON)"
        elif body.startswith("#") and body.split(" ")[0] not in ("#key", "#value") and \
                not re.fullmatch(r"#idx\d+", body) and row[col] is not None:
            bags.append((col, body))
    # A column the mapping keeps for what exceeds MySQL's limits (`#overflow`): the fields that have
    # no column of their own, as they sit in the document.
    for col, body in bags:
        try:
            bag = json.loads(text(row[col]))
        except ValueError:
            continue
        value = _navigate(bag, rel)
        if value is not _MISSING:
            return value, f"{table}.{col} ({body})"
    similar = [c for c, m in comments if rel and isinstance(rel[0], str) and rel[0][:8] in m][:3]
    return _MISSING, (f"no column of {table} holds {source(rel)} ({len(comments)} columns"
                      + (f"; similar: {similar}" if similar else "") + ")")


def same(found, expected):
    """Whether a value read from MySQL (a column's value, or a value parsed from a JSON column) is
    the expected one: numbers and booleans by value, anything else by its text."""
    if isinstance(found, (bytes, bytearray)):
        found = text(found)
    if isinstance(expected, (bool, int, float)):
        if isinstance(found, (bool, int, float, Decimal)):
            return found == expected
        try:
            return float(found) == float(expected)
        except (TypeError, ValueError):
            return False
    return not isinstance(found, (dict, list)) and text(found) == expected


def run_checks(schema, corpus_class):
    """[failure message] of the class's checks."""
    failures = []
    for check in corpus_class.checks:
        found, where = find(schema, corpus_class.name, check._id, check.path)
        label = f"{check.why}: _id={check._id!r} path={list(check.path)!r}"[:300]
        if found is _MISSING:
            failures.append(f"{label}: not found ({where})")
        elif not same(found, check.expected):
            failures.append(f"{label}: expected {check.expected!r}"[:400] + f", found {text(found)[:200]!r} in {where}")
    return failures


def quarantined(conn, database, table):
    """{collection: [(offset, key, error)]} from apply's quarantine table (`_m2m_quarantine` of the
    native engine, `_m2m_spark_quarantine` of the Spark job); the collection is the topic's last part."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                    (database, table))
        if cur.fetchone()[0] == 0:
            return {}
        key_column = "msg_key" if table == "_m2m_quarantine" else "NULL"
        cur.execute(f"SELECT topic, `offset`, {key_column}, error FROM `{database}`.`{table}` ORDER BY topic, `offset`")
        out = defaultdict(list)
        for topic, offset, msg_key, error in cur.fetchall():
            key = None if msg_key is None else text(msg_key)
            out[text(topic).rsplit(".", 1)[-1]].append((offset, key, text(error)))
        return out


def dead_letters(messages):
    """{collection: [(key, reason)]} from capture's dead-letter topic's messages."""
    out = defaultdict(list)
    for _, value in messages:
        event = str(value.get("event", ""))
        _id = re.search(r'"documentKey"\s*:\s*\{\s*"_id"\s*:\s*("[^"]*"|\{[^}]*\}|[^,}]*)', event)
        out[str(value.get("topic", "?")).rsplit(".", 1)[-1]].append(
            (_id.group(1) if _id else event[:120], value.get("reason")))
    return out


def verify_differences(lines):
    """{collection: [line]} of verify's report lines (missing, extra, different, unmappable, count)."""
    out = defaultdict(list)
    for line in lines:
        m = re.match(r"(missing|extra|different|unmappable|count) (\S+)", line)
        if m:
            out[m.group(2)].append(line)
    return out


def _first(items, n=2, width=700):
    return [("    " + item[:width] + (" …" if len(item) > width else "")) for item in items[:n]]


def _causes(message):
    """The lines of an engine's failure that say why: the native engine's final `mongo2mysql:` line,
    then exception lines (a Spark query's failure carries Python and JVM stacks around them)."""
    lines = [line.strip() for line in message.splitlines()]
    final = [line for line in lines if line.startswith("mongo2mysql:")]
    exceptions = [line for line in lines if re.search(r"(Error|Exception|Invalid)\b.*[:(\[]", line)
                  and not line.startswith(("at ", "File ", "raise ", "err.", "packet.", "Caused by: org.apache.spark"))]
    out = []
    for line in final + exceptions:
        if line not in out:
            out.append(line)
    return out or [message[-1500:]]


def _kinds(errors):
    """Distinct messages once the document's _id and numbers are taken out, most frequent first."""
    counts = defaultdict(int)
    for e in errors:
        counts[re.sub(r"\d+", "N", re.sub(r"_id=(\{[^}]*\}\}?|\"[^\"]*\"|\S+)", "_id=…", e))[:160]] += 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def build(conn, database, mongo_db, corpus_classes, quarantine_table, dead, runs):
    """(report text, number of problems). `runs` holds per class (engine error or None, verify's exit
    status, verify's output lines): each class is applied and verified on its own, so one that stops
    the engine or verify hides nothing of the others. A problem is an engine or verify failure, a
    document without its root row, a quarantined or dead-lettered event, a verify difference or a
    failed check."""
    schema = Schema(conn, database)
    quarantine = quarantined(conn, database, quarantine_table)
    lines, problems = [], 0
    for c in corpus_classes:
        engine_error, verify_status, verify_lines = runs[c.name]
        documents = mongo_db[c.name].count_documents({})
        root = schema.root(c.name)
        rows = schema.count(root) if root else None
        q, d = quarantine.get(c.name, []), dead.get(c.name, [])
        v = verify_differences(verify_lines).get(c.name, [])
        failures = run_checks(schema, c)
        missing = documents - (rows or 0)
        verify_failed = verify_status != 0 and not v
        problems += (missing != 0) + len(q) + len(d) + len(v) + len(failures) + bool(engine_error) + verify_failed
        failed = missing or q or d or v or failures or engine_error or verify_failed
        lines.append(f"class {c.name} [{'FAILS' if failed else 'ok'}]: {documents} documents, "
                     f"{'no root table' if root is None else f'{rows} root rows'}; {len(q)} quarantined, "
                     f"{len(d)} dead-lettered, {len(v)} verify differences, {len(failures)} of {len(c.checks)} "
                     f"checks failed{'; the engine failed' if engine_error else ''}")
        if engine_error:
            lines += ["  engine failed:", *_first(_causes(engine_error), 4, 600)]
        if verify_failed:
            lines += ["  verify failed:", *_first(verify_lines[-1:], 1, 1500)]
        if q:
            lines.append(f"  quarantined ({quarantine_table}), first 2 of {len(q)}:")
            lines += _first([f"offset {o} key {k}: {e}" for o, k, e in q])
            lines.append("  quarantine errors by kind:")
            lines += [f"    {n} x {kind}" for kind, n in _kinds([e for _, _, e in q])[:6]]
        if d:
            lines.append(f"  dead letters, first 2 of {len(d)}:")
            lines += _first([f"_id {k}: {r}" for k, r in d])
        if v:
            kinds = defaultdict(int)
            for line in v:
                kinds[line.split(" ", 1)[0]] += 1
            lines.append(f"  verify ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), first 2:")
            lines += _first(v)
            lines.append("  verify differences by kind:")
            lines += [f"    {n} x {kind}" for kind, n in _kinds(v)[:10]]
        if failures:
            lines.append("  checks failed:")
            lines += _first(failures, len(failures), 500)
    return "\n".join(lines), problems
