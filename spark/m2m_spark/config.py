"""The YAML mapping file (docs/mapping.md, section 8): options and per-collection maps."""
import re
from dataclasses import dataclass, field

import yaml


class MappingError(ValueError):
    """The mapping file is invalid."""


@dataclass
class Column:
    source: str
    column: str = ""
    type: str | None = None


@dataclass
class CollectionMap:
    table: str = ""
    primary_key: list = field(default_factory=lambda: ["_id"])
    unmapped: str = "auto"
    exclude: list = field(default_factory=list)
    columns: list = field(default_factory=list)

    def column_for(self, dotted):
        return next((c for c in self.columns if c.source == dotted), None)


@dataclass
class Options:
    separator: str = "_"
    flatten_depth: int = 3
    scalar_arrays: str = "json"
    max_varchar_columns: int = 40
    on_drop: str = "keep"
    on_rename: str = "rename"


@dataclass
class Transform:
    """A user SQL transform (docs/spark.md, "Transforms"): `sql` runs in Spark SQL over the rows of
    the mapped table `source` (a temp view of that name) and its result is kept in `table`, whose
    primary key is `key` (columns of `source` the result carries under the same names; empty: the
    source's primary key, a row-by-row transform)."""
    table: str
    source: str
    sql: str
    key: list = field(default_factory=list)


@dataclass
class MappingConfig:
    options: Options = field(default_factory=Options)
    collections: dict = field(default_factory=dict)
    transforms: dict = field(default_factory=dict)

    def collection(self, name):
        return self.collections.get(name) or CollectionMap()


_CHOICES = {"scalar_arrays": ("json", "table"), "on_drop": ("keep", "drop"), "on_rename": ("rename", "keep")}


def parse(text):
    """YAML text -> MappingConfig; unknown keys and bad values raise MappingError."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise MappingError("mapping: the document must be a map")
    cfg = MappingConfig()
    for key, value in doc.items():
        if key == "collections":
            for name, spec in (value or {}).items():
                cfg.collections[name] = _collection(name, spec or {})
        elif key == "transforms":
            for table, spec in (value or {}).items():
                cfg.transforms[str(table)] = _transform(str(table), spec or {})
        elif key in Options.__dataclass_fields__:
            if key in _CHOICES and value not in _CHOICES[key]:
                raise MappingError(f"mapping: {key}: unknown value '{value}'")
            setattr(cfg.options, key, value)
        else:
            raise MappingError(f"mapping: unknown key {key}")
    targets = {t.lower() for t in cfg.transforms}
    for tr in cfg.transforms.values():
        if tr.source.lower() in targets:
            raise MappingError(f"mapping: transforms.{tr.table}: reads {tr.source}, the result of another "
                               "transform; transforms read mapped tables only")
    o = cfg.options
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(o.separator)):
        raise MappingError("mapping: separator may contain only A-Z, a-z, 0-9 and _")
    if not 0 <= int(o.flatten_depth) <= 32:
        raise MappingError("mapping: flatten_depth must be 0..32")
    return cfg


def _collection(name, spec):
    cm = CollectionMap()
    for key, value in spec.items():
        if key == "table":
            cm.table = str(value)
        elif key == "primary_key":
            cm.primary_key = [value] if isinstance(value, str) else list(value)
        elif key == "exclude":
            cm.exclude = list(value)
        elif key == "unmapped":
            if value not in ("auto", "ignore"):
                raise MappingError(f"mapping: {name}.unmapped: auto or ignore")
            cm.unmapped = value
        elif key == "columns":
            for c in value:
                if isinstance(c, str):
                    cm.columns.append(Column(c))
                elif set(c) <= {"source", "column", "type"}:
                    cm.columns.append(Column(c["source"], c.get("column", ""), c.get("type")))
                else:
                    raise MappingError(f"mapping: {name}.columns: unknown key {sorted(set(c) - {'source', 'column', 'type'})[0]}")
        elif key == "transforms":
            raise MappingError(f"mapping: collection {name}: transforms belong at the top level")
        else:
            raise MappingError(f"mapping: collection {name}: unknown key {key}")
    return cm


def _transform(table, spec):
    where = f"mapping: transforms.{table}"
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: must be a map with from, sql and optionally key")
    unknown = set(spec) - {"from", "sql", "key"}
    if unknown:
        raise MappingError(f"{where}: unknown key {sorted(unknown)[0]}")
    if not spec.get("from") or not spec.get("sql"):
        raise MappingError(f"{where}: needs `from` (the mapped table it reads) and `sql`")
    if len(table) > 64 or table.startswith("_m2m"):
        raise MappingError(f"{where}: a table name of at most 64 characters, not starting with _m2m")
    key = spec.get("key") or []
    tr = Transform(table, str(spec["from"]), str(spec["sql"]), [key] if isinstance(key, str) else list(key))
    if tr.source.lower() == table.lower():
        raise MappingError(f"{where}: reads and writes the same table")
    return tr


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())
