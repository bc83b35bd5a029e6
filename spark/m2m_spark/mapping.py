"""The document-to-table mapping of docs/mapping.md, as a fold over one micro-batch on the driver.

Spark SQL has already taken every document apart into typed cells (cells.py). What is left is
inherently sequential and small: the first source seen names a column or table, a column only
widens, a value written before its column turned into text keeps the text of the type it was
written with, and operations on one key coalesce. The fold keeps a catalog of the tables (read from
information_schema, whose comments record every column's source) and produces, per segment of the
batch, the DDL and the data statements."""
import json
from dataclasses import dataclass, field

from . import sqltypes as st
from .sqltypes import T, Value


class MappingFailure(Exception):
    """The event cannot be mapped (a fixed type that does not fit, a key that is too long...): it
    goes to quarantine and the batch goes on."""


class NeedsFullDocument(Exception):
    """A delta that cannot be applied column-wise (docs/mapping.md, section 6)."""


def dumps(x):
    return json.dumps(x, ensure_ascii=False, separators=(",", ":"))


def path_source(path):
    return dumps(list(path))


def table_source(collection, levels):
    return dumps([collection] + [list(l) for l in levels])


def fnv1a32(text):
    h = 2166136261
    for b in text.encode("utf-8", "surrogatepass"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return f"{h:08x}"


def sanitize(component):
    clean = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in component)
    return clean, clean != component or component == ""


def make_identifier(prefix, path, sep, hash_source, taken):
    parts, lossy = ([prefix] if prefix else []), False
    for c in path:
        clean, changed = sanitize(c)
        lossy |= changed
        parts.append(clean)
    base = sep.join(parts)
    if not lossy and len(base) <= 64 and not taken(base):
        return base
    h = fnv1a32(hash_source)
    n = 1
    while True:
        suffix = ("" if n == 1 else f"_{n}") + "_" + h
        candidate = base[:64 - len(suffix)] + suffix
        if not taken(candidate):
            return candidate
        n += 1


@dataclass
class Column:
    name: str
    source: str
    type: T = T.NULL
    fixed: bool = False
    raw_type: str = ""

    def ddl(self, key):
        comment = ("json " + self.source) if self.type == T.JSON else self.source
        type_ddl = self.raw_type if self.type == T.OTHER else st.DDL[self.type]
        return (f"{st.quote_identifier(self.name)} {type_ddl} {'NOT NULL' if key else 'NULL'} "
                f"COMMENT {st.quote_string(comment)}")


@dataclass
class Table:
    name: str
    source: str
    columns: list = field(default_factory=list)
    primary_key: list = field(default_factory=list)

    def find(self, name):
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)

    # Columns by source, for find_source, which the fold calls for every cell; rebuilt when columns
    # were added (they are only ever appended, and a column's source never changes).
    _by_source: tuple = field(default=(0, {}), init=False, repr=False, compare=False)

    def find_source(self, source):
        count, index = self._by_source
        if count != len(self.columns):
            index = {}
            for c in self.columns:
                index.setdefault(c.source, c)
            self._by_source = (len(self.columns), index)
        return index.get(source)

    # The table comment parsed, for the source it was parsed from (a rename changes a copy's source).
    _parsed: tuple = field(default=(None, None), init=False, repr=False, compare=False)

    def _source_json(self):
        if self._parsed[0] != self.source:
            try:
                value = json.loads(self.source)
            except ValueError:  # a comment that is no table source: a table someone else made
                value = None
            self._parsed = (self.source, value)
        return self._parsed[1]

    def levels(self):
        s = self._source_json()
        if not isinstance(s, list):
            return []
        return [[c if isinstance(c, str) else "" for c in level] if isinstance(level, list) else [] for level in s[1:]]

    def collection(self):
        """The collection whose documents the table holds. None for a table the mapping did not
        create (its comment is no table source): such a table is left alone, and kept in the catalog
        only so that its name is never taken (core/src/table_schema.cc, CatalogFromInformationSchema)."""
        s = self._source_json()
        return s[0] if isinstance(s, list) and s and isinstance(s[0], str) else None

    def copy(self):
        return Table(self.name, self.source, [Column(**vars(c)) for c in self.columns], list(self.primary_key))


class Catalog:
    def __init__(self, tables=()):
        self.tables = {t.name.lower(): t for t in tables}

    def find(self, name):
        return self.tables.get(name.lower())

    def copy(self):
        """A catalog the mapping can change without changing this one: the fold never changes a
        Table in place, it puts changed copies in `tables`."""
        out = Catalog()
        out.tables = dict(self.tables)
        return out

    def find_source(self, source):
        return next((t for t in self.tables.values() if t.source == source), None)

    def collection_tables(self, collection):
        return [t for t in self.tables.values() if t.collection() == collection]

    @staticmethod
    def query(database):
        return ("SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.COLUMN_KEY, c.COLUMN_COMMENT, t.TABLE_COMMENT "
                "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA "
                "AND t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = %s AND c.TABLE_NAME NOT LIKE '\\_m2m%%' "
                "ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION", (database,))

    @classmethod
    def from_rows(cls, rows):
        cat = cls()
        for table, column, column_type, key, comment, table_comment in rows:
            t = cat.tables.setdefault(table.lower(), Table(table, table_comment or ""))
            is_json = (comment or "").startswith("json ")
            c = Column(column, comment[5:] if is_json else (comment or ""), st.parse_column_type(column_type, is_json))
            if c.type == T.OTHER:
                c.raw_type = column_type
            c.fixed = c.type == T.OTHER or not c.source
            if key == "PRI":
                t.primary_key.append(c.name)
            t.columns.append(c)
        return cat


def value_of(nat, text, raw):
    """The Value of a cell classified by Spark SQL; DOUBLE and DECIMAL texts are finished here."""
    if nat == "DOUBLE":
        d = float(text)
        txt = double_text(d)
        if d != d or d in (float("inf"), float("-inf")):
            return Value(st.text_type(txt), txt)
        return Value(T.DOUBLE, txt, decimal=st.fixed_decimal(txt))
    if nat == "DECIMAL":
        fixed = st.fixed_decimal(text)
        if fixed is None:
            return Value(st.text_type(text), text)
        return Value(T.DECIMAL, st.decimal_column_text(fixed), decimal=fixed)
    if nat in ("INT", "BIGINT", "BOOL"):
        return Value(T[nat], text, decimal=text, exact_in_double=abs(int(text)) <= 2 ** 53)
    if nat == "TEXT":
        return Value(st.text_type(text), text)
    if nat == "BLOB":
        return Value(st.blob_type(len(raw)), text, raw=bytes(raw))
    return Value({"OID": T.OID, "UUID": T.UUID, "DATETIME": T.DATETIME, "JSON": T.JSON}[nat], text)


def double_text(d):
    """Shortest round-trip decimal, fixed or exponent form whichever is shorter (fixed on a tie),
    exponent spelled as MySQL does: 1e20, 1e-5."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    r = repr(d)
    mantissa, _, exp = r.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    if digits == "0":
        return sign + "0"
    if point >= len(digits):
        fixed = digits + "0" * (point - len(digits))
    elif point > 0:
        fixed = digits[:point] + "." + digits[point:]
    else:
        fixed = "0." + "0" * -point + digits
    sci = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + "e" + str(point - 1)
    return sign + (fixed if len(fixed) <= len(sci) else sci)


def key_value(nat, text, raw):
    if nat is None:
        raise MappingFailure("the key is null")
    v = value_of(nat, text, raw)
    if v.type in (T.INT, T.BIGINT):
        return Value(T.BIGINT, v.text, decimal=v.text)
    if v.type == T.OID:
        return v
    text = v.text
    if len(text.encode("utf-8", "surrogatepass")) > st.KEY_TEXT_BYTES:
        raise MappingFailure(f"the key is {len(text.encode())} bytes as text; key columns hold at most 1024")
    return Value(T.KEYTEXT, text)


@dataclass
class DocOp:
    kind: str                  # upsert | delete | update | needs_full | none
    table: str = ""
    key: list = field(default_factory=list)     # [(column, Value)]
    row: list = field(default_factory=list)     # upsert: the root row
    set: list = field(default_factory=list)     # update: the columns set
    children: dict = field(default_factory=dict)  # table -> [row]
    descendants: list = field(default_factory=list)
    label: str = ""
    reason: str = ""


@dataclass
class SchemaChange:
    kind: str                  # create | add | modify
    table: Table
    columns: list
    previous: T = T.NULL


def _prefix(prefix, path):
    return len(prefix) <= len(path) and list(path[:len(prefix)]) == list(prefix)


class EventMapper:
    """Maps one event against copies of the tables it touches; commit() makes them the catalog's,
    so an event that fails to map leaves the catalog as it was."""

    def __init__(self, cfg, catalog, collection, label):
        self.o, self.cm, self.catalog, self.coll = cfg.options, cfg.collection(collection), catalog, collection
        self.cfg = cfg
        self.label = label
        self.work, self.order, self.children = {}, [], {}
        self.root_source = table_source(collection, [])

    def fail(self, field_, cause):
        raise MappingFailure(f"{self.coll} {self.label}{' field ' + field_ if field_ else ''}: {cause}")

    def find_table(self, source):
        for orig, now in self.work.values():
            if now.source == source:
                return now
        t = self.catalog.find_source(source)
        if t is None:
            return None
        self.order.append(t.name.lower())
        self.work[t.name.lower()] = (t, t.copy())
        return self.work[t.name.lower()][1]

    def _taken_table(self, name, source):
        w = self.work.get(name.lower())
        if w:
            return w[1].source != source
        t = self.catalog.find(name)
        return t is not None and t.source != source

    def get_table(self, source, prefix, name_path):
        t = self.find_table(source)
        if t:
            return t
        if prefix:
            name = make_identifier(prefix, name_path, self.o.separator, source, lambda n: self._taken_table(n, source))
        else:
            name = root_table_name(self.cfg, self.coll, self.catalog)
        t = Table(name, source)
        self.order.append(name.lower())
        self.work[name.lower()] = (None, t)
        return t

    def put(self, t, row, source, name_path, explicit, v, key, field_, root_level):
        c = t.find_source(source)
        if c is None:
            name = explicit or make_identifier("", name_path, self.o.separator, source, lambda n: t.find(n) is not None)
            c = Column(name, source)
            m = self.cm.column_for(".".join(name_path)) if root_level and not key else None
            if m and m.type:
                c.type = st.parse_column_type(m.type, False)
                c.raw_type = m.type if c.type == T.OTHER else ""
                c.fixed = True
            t.columns.append(c)
        varchars = sum(1 for x in t.columns if x.type == T.VARCHAR)
        wanted = st.widen_key(c.type, v) if key else st.widen(
            c.type, v, varchars < self.o.max_varchar_columns or c.type == T.VARCHAR)
        if wanted != c.type:
            if c.fixed and c.type != T.NULL:
                self.fail(field_, f"value {(v.text or '')[:64]} needs {st.DDL.get(wanted, '?')} but column "
                                  f"`{c.name}` has the fixed type {c.raw_type or st.DDL[c.type]}")
            c.type = wanted
        row.append((c.name, v))
        return c.name

    def root(self, keys, create):
        t = self.get_table(self.root_source, "", [self.coll]) if create else self.find_table(self.root_source)
        if t is None:
            return None, [], []
        fresh = not t.primary_key
        key_row, pairs = [], []
        for pk, k in zip(self.cm.primary_key, keys):
            if k is None:
                self.fail(pk, "the primary key field is missing")
            try:
                v = key_value(*k)
            except MappingFailure as e:
                self.fail(pk, str(e))
            p = pk.split(".")
            m = self.cm.column_for(pk)
            name = self.put(t, key_row, path_source(p), p, m.column if m else "", v, True, pk, True)
            pairs.append((path_source(p), name, v))
            if fresh:
                t.primary_key.append(name)
        return t, key_row, pairs

    def walk_cells(self, root_table, root_row, root_pairs, cells, delta):
        rows = {((), ()): (root_table, root_row, root_pairs)}
        for c in cells:
            levels = tuple(tuple(l) for l in c.levels)
            idx = tuple(c.idx)
            if c.nat == "ROW":
                if delta:
                    raise NeedsFullDocument(f"field {'.'.join(levels[-1])} holds an array of documents")
                parent_t, _, parent_pairs = rows[(levels[:-1], idx[:-1])]
                t = self.get_table(table_source(self.coll, levels), parent_t.name, list(levels[-1]))
                fresh = not t.primary_key
                row, pairs = [], []
                for src, col, v in parent_pairs:
                    s = src if src.startswith("#") else "#key " + src
                    self.put(t, row, s, [], col, v, True, "", False)
                    pairs.append((s, col, v))
                n = len(levels)
                i = Value(T.INT, str(idx[-1]), decimal=str(idx[-1]))
                name = self.put(t, row, f"#idx{n}", [], f"_idx{n}", i, True, "", False)
                pairs.append((f"#idx{n}", name, i))
                if fresh:
                    t.primary_key = [col for _, col, _ in pairs]
                self.children.setdefault(t.name, []).append(row)
                rows[(levels, idx)] = (t, row, pairs)
                continue
            t, row, _ = rows[(levels, idx)]
            field_ = ".".join(c.path)
            if c.nat == "EMPTY":
                sub = table_source(self.coll, [list(l) for l in levels] + [list(c.path)])
                if self.find_table(sub) is not None or self.o.scalar_arrays == "table":
                    continue
                v = Value(T.JSON, "[]")
            else:
                v = value_of(c.nat, c.text, c.raw)
            if not c.path:
                self.put(t, row, "#value", [], "_value", v, False, field_, False)
            else:
                m = self.cm.column_for(field_) if not levels else None
                self.put(t, row, path_source(c.path), list(c.path), m.column if m else "", v, False, field_, not levels)

    def upsert(self, ev, cells):
        t, key_row, pairs = self.root(ev.keys, True)
        row = list(key_row)
        self.walk_cells(t, row, pairs, cells, False)
        return DocOp("upsert", t.name, key_row, row, children=self.children)

    def delete(self, ev):
        t, key_row, _ = self.root(ev.keys, False)
        return DocOp("delete", t.name, key_row) if t else DocOp("none")

    def update(self, ev, cells):
        t, key_row, pairs = self.root(ev.keys, False)
        if t is None:
            return DocOp("none")
        op = DocOp("update", t.name, key_row)
        try:
            if ev.truncated:
                raise NeedsFullDocument(f"field {ev.truncated[0]} is a truncated array")
            by_key = {}
            for c in cells:
                by_key.setdefault(c.seq[0], []).append(c)
            for i, dotted in enumerate(ev.updated_keys):
                path = dotted.split(".")
                self.delta_blocker(path)
                part = []
                self.walk_cells(t, part, pairs, by_key.get(i, []), True)
                if dotted not in self.cm.exclude:
                    self.null_under(t, path, part)
                op.set.extend(part)
            for removed in ev.removed:
                path = removed.split(".")
                self.delta_blocker(path)
                self.null_under(t, path, op.set)
        except NeedsFullDocument as e:
            return DocOp("needs_full", t.name, key_row, reason=str(e))
        dedup = {}
        for col, v in op.set:
            dedup[col] = v
        op.set = list(dedup.items())
        if not op.set:
            op.kind = "none"
        return op

    def delta_blocker(self, path):
        dotted = ".".join(path)
        if any(p.isdigit() and p.isascii() for p in path[1:]):
            raise NeedsFullDocument(f"field {dotted} is an array position")
        if len(path) > self.o.flatten_depth + 1:
            raise NeedsFullDocument(f"field {dotted} is inside a sub-document stored as JSON")
        for c in self.cm.columns:
            if dotted.startswith(c.source + ".") or c.source.startswith(dotted + "."):
                raise NeedsFullDocument(f"field {dotted} overlaps the mapped column {c.source}")
        root = self.catalog.find_source(self.root_source)
        for i in range(1, len(path)):
            c = root.find_source(path_source(path[:i]))
            if c and (c.type == T.JSON or st.is_text(c.type)):
                raise NeedsFullDocument(f"field {dotted} is inside the JSON column {c.name}")
        for t in self.catalog.collection_tables(self.coll):
            levels = t.levels()
            if levels and (_prefix(path, levels[0]) or _prefix(levels[0], path)):
                raise NeedsFullDocument(f"field {dotted} maps to the child table {t.name}")

    def null_under(self, t, path, row):
        for c in t.columns:
            try:
                src = json.loads(c.source)
            except ValueError:
                continue
            if isinstance(src, list) and all(isinstance(x, str) for x in src) and _prefix(path, src) \
                    and not any(col == c.name for col, _ in row):
                row.append((c.name, st.NULL))

    def commit(self, changes):
        for k in self.order:
            orig, t = self.work[k]
            if orig is None:
                if not t.columns:
                    continue
                changes.append(SchemaChange("create", t.copy(), list(t.columns)))
            else:
                added = []
                for c in t.columns:
                    before = orig.find(c.name)
                    if before is None:
                        added.append(c)
                    elif before.type != c.type:
                        changes.append(SchemaChange("modify", t.copy(), [Column(**vars(c))], before.type))
                if added:
                    changes.append(SchemaChange("add", t.copy(), [Column(**vars(c)) for c in added]))
            self.catalog.tables[t.name.lower()] = t


def root_table_name(cfg, collection, catalog):
    t = catalog.find_source(table_source(collection, []))
    if t:
        return t.name
    return new_root_name(cfg, collection, lambda n: catalog.find(n) is not None)


def new_root_name(cfg, collection, taken):
    cm = cfg.collections.get(collection)
    if cm and cm.table:
        return cm.table
    return make_identifier("", [collection], cfg.options.separator, table_source(collection, []), taken)


@dataclass
class CollectionOp:
    kind: str                  # drop | dropDatabase | rename
    propagate: bool
    tables: list = field(default_factory=list)
    renames: list = field(default_factory=list)  # (old, new, new source)


def map_collection_event(cfg, catalog, ev):
    """drop / dropDatabase / rename -> CollectionOp, updating the catalog when it propagates."""
    if ev.event in ("drop", "dropDatabase"):
        op = CollectionOp(ev.event, cfg.options.on_drop == "drop")
        tables = (catalog.collection_tables(ev.collection) if ev.event == "drop"
                  else [t for t in catalog.tables.values() if t.collection()])
        op.tables = [t.name for t in sorted(tables, key=lambda t: -len(t.levels()))]
        if op.propagate:
            for n in op.tables:
                catalog.tables.pop(n.lower(), None)
        return op
    op = CollectionOp("rename", cfg.options.on_rename == "rename")
    tables = catalog.collection_tables(ev.collection)
    if not op.propagate or not tables:
        return op
    if catalog.collection_tables(ev.rename_to):
        raise MappingFailure(f"rename {ev.collection} -> {ev.rename_to}: the target collection already has "
                             "tables; drop them first")
    tables.sort(key=lambda t: len(t.levels()))
    taken, new_by_source, renamed = set(), {}, []
    for t in tables:
        levels = t.levels()
        source = table_source(ev.rename_to, levels)

        def is_taken(n):
            other = catalog.find(n)
            return n.lower() in taken or (other is not None and other.collection() != ev.collection)
        if not levels:
            name = new_root_name(cfg, ev.rename_to, is_taken)
        else:
            parent = new_by_source[table_source(ev.rename_to, levels[:-1])]
            name = make_identifier(parent, levels[-1], cfg.options.separator, source, is_taken)
        taken.add(name.lower())
        new_by_source[source] = name
        op.tables.append(t.name)
        op.renames.append((t.name, name, source))
        copy = t.copy()
        copy.name, copy.source = name, source
        renamed.append(copy)
    for n in op.tables:
        catalog.tables.pop(n.lower(), None)
    for t in renamed:
        catalog.tables[t.name.lower()] = t
    return op


def map_event(cfg, catalog, ev, cells):
    """One document event -> (DocOp, [SchemaChange]); the catalog takes the new schema."""
    em = EventMapper(cfg, catalog, ev.collection, ev.label)
    if ev.event == "delete":
        op = em.delete(ev)
    elif ev.has_after:
        op = em.upsert(ev, cells)
    elif ev.event == "update" and ev.has_update:
        op = em.update(ev, cells)
    else:
        op = DocOp("none")
    changes = []
    em.commit(changes)
    if op.kind in ("upsert", "delete"):
        desc = [t for t in catalog.collection_tables(ev.collection) if t.levels()]
        op.descendants = [t.name for t in sorted(desc, key=lambda t: -len(t.levels()))]
    op.label = f"{ev.collection} {ev.label}"
    return op, changes


class Segment:
    """Events up to a collection operation: documents coalesced per key, DDL in order.

    coalesce=False keeps one document operation per event instead, in event order, each with its
    event in `owners` (the writer's isolation of an event MySQL refuses, docs/spark.md)."""

    def __init__(self, coalesce=True):
        self.changes, self.docs, self.index, self.tables, self.collection_op = [], [], {}, {}, None
        self.coalesce, self.owners = coalesce, []

    def add(self, op, changes, catalog, owner=None):
        for ch in changes:
            if ch.kind == "modify":
                self._convert_pending(ch)
            self.changes.append(ch)
        if op.kind == "none":
            return
        for name in [op.table] + op.descendants:
            t = catalog.find(name)
            if t:
                self.tables[t.name] = t.copy()
        if not self.coalesce:
            self.docs.append(op)
            self.owners.append(owner)
            return
        key = (op.table, tuple(st.literal(v, v.type) for _, v in op.key))
        if key not in self.index:
            self.index[key] = len(self.docs)
            self.docs.append(op)
            return
        prev = self.docs[self.index[key]]
        if op.kind != "update":
            self.docs[self.index[key]] = op
        elif prev.kind == "upsert":
            _merge(prev.row, op.set)
        elif prev.kind == "update":
            _merge(prev.set, op.set)

    def _convert_pending(self, ch):
        c = ch.columns[0]
        if not st.is_text(c.type) or st.is_text(ch.previous):
            return
        low = c.name.lower()

        def convert(row):
            row[:] = [(col, st.converted_to_text(v, ch.previous) if col.lower() == low else v) for col, v in row]
        for d in self.docs:
            if d.table == ch.table.name:
                convert(d.row)
                convert(d.set)
            for r in d.children.get(ch.table.name, []):
                convert(r)


def _merge(into, values):
    for col, v in values:
        for i, (c, _) in enumerate(into):
            if c == col:
                into[i] = (c, v)
                break
        else:
            into.append((col, v))
