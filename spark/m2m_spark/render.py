"""SQL text of one segment (docs/mapping.md, section 7): DDL first, then the data statements in
the order both engines use, multi-row statements split under max_statement_bytes."""
from . import sqltypes as st
from .sqltypes import quote_identifier as qi

MAX_STATEMENT_BYTES = 4 << 20


def _chunks(head, items, tail, limit=MAX_STATEMENT_BYTES):
    out, body = [], []
    size = len(head) + len(tail)
    for item in items:
        if body and size + len(item) + 1 > limit:
            out.append(head + ",".join(body) + tail)
            body, size = [], len(head) + len(tail)
        body.append(item)
        size += len(item) + 1
    if body:
        out.append(head + ",".join(body) + tail)
    return out


def _type(table, column, v):
    c = table.find(column) if table else None
    return c.type if c else v.type


def schema_change(ch, instant_add_column=True):
    t = qi(ch.table.name)
    pk = ch.table.primary_key
    if ch.kind == "create":
        cols = "".join(c.ddl(c.name in pk) + ", " for c in ch.columns)
        return (f"CREATE TABLE IF NOT EXISTS {t} ({cols}PRIMARY KEY ({','.join(qi(k) for k in pk)})) ENGINE=InnoDB "
                f"DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT={st.quote_string(ch.table.source)}")
    if ch.kind == "add":
        return (f"ALTER TABLE {t} " + ", ".join("ADD COLUMN " + c.ddl(False) for c in ch.columns)
                + (", ALGORITHM=INSTANT" if instant_add_column else ""))
    c = ch.columns[0]
    return f"ALTER TABLE {t} MODIFY COLUMN {c.ddl(c.name in pk)}"


def _delete(table, name, keys):
    if not keys:
        return []
    cols = [qi(c) for c, _ in keys[0]]
    composite = len(cols) > 1
    items = []
    for key in keys:
        lits = [st.literal(v, _type(table, c, v)) for c, v in key]
        items.append("(" + ",".join(lits) + ")" if composite else lits[0])
    where = "(" + ",".join(cols) + ")" if composite else cols[0]
    return _chunks(f"DELETE FROM {qi(name)} WHERE {where} IN (", items, ")")


def _insert(table, rows, upsert):
    if not rows:
        return []
    cols = [qi(c.name) for c in table.columns]
    update = ",".join(f"{qi(c.name)}=VALUES({qi(c.name)})" for c in table.columns if c.name not in table.primary_key)
    update = update or f"{cols[0]}={cols[0]}"
    items = []
    for row in rows:
        by_name = {c.lower(): v for c, v in row}
        items.append("(" + ",".join(st.literal(by_name[c.name.lower()], c.type) if c.name.lower() in by_name
                                    else "NULL" for c in table.columns) + ")")
    return _chunks(f"INSERT INTO {qi(table.name)} ({','.join(cols)}) VALUES ", items,
                   f" ON DUPLICATE KEY UPDATE {update}" if upsert else "")


def data_statements(seg):
    """The segment's DML, in the order of docs/mapping.md section 7 (steps 2-4)."""
    out, roots = [], {}
    for d in seg.docs:
        r = roots.setdefault(d.table, {"upsert": [], "delete": [], "update": [], "desc": []})
        if d.kind in r:
            r[d.kind].append(d)
        if len(d.descendants) > len(r["desc"]):
            r["desc"] = d.descendants
    for name in sorted(roots):
        r = roots[name]
        cleared = [d.key for d in r["upsert"] + r["delete"]]
        for child in r["desc"]:
            out += _delete(seg.tables.get(child), child, cleared)
        out += _delete(seg.tables.get(name), name, [d.key for d in r["delete"]])
    for name in sorted(roots):
        root = seg.tables.get(name)
        if root is None:
            continue
        r = roots[name]
        out += _insert(root, [d.row for d in r["upsert"]], True)
        children = {}
        for d in r["upsert"]:
            for child, rows in d.children.items():
                children.setdefault(child, []).extend(rows)
        for child in sorted(children):
            if child in seg.tables:
                out += _insert(seg.tables[child], children[child], False)
    for name in sorted(roots):
        t = seg.tables.get(name)
        for d in roots[name]["update"]:
            sets = ",".join(f"{qi(c)}={st.literal(v, _type(t, c, v))}" for c, v in d.set)
            where = " AND ".join(f"{qi(c)}={st.literal(v, _type(t, c, v))}" for c, v in d.key)
            out.append(f"UPDATE {qi(d.table)} SET {sets} WHERE {where}")
    return out


def collection_statements(op):
    if op is None or not op.propagate or not op.tables:
        return []
    if op.kind == "rename":
        return ["RENAME TABLE " + ", ".join(f"{qi(a)} TO {qi(b)}" for a, b, _ in op.renames)] + [
            f"ALTER TABLE {qi(b)} COMMENT={st.quote_string(s)}" for _, b, s in op.renames]
    return ["DROP TABLE IF EXISTS " + ", ".join(qi(t) for t in op.tables)]
