"""Column types, widening and SQL literals of docs/mapping.md, sections 2, 3 and 5.

Values arrive already classified by Spark SQL (cells.py): each carries its natural type and text
form. This module holds the rules that depend on a column's current type, which the driver applies
in event order (the mapping is a fold over the batch: the first source seen names a column, and a
column only ever widens)."""
import enum
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class T(enum.IntEnum):
    """Ordered as docs/mapping.md's widening ladder: rank only compares types of one family."""
    NULL = 0
    BOOL = 1
    INT = 2
    BIGINT = 3
    DECIMAL = 4
    DOUBLE = 5
    DATETIME = 6
    OID = 7
    UUID = 8
    KEYTEXT = 9
    VARCHAR = 10
    TEXT = 11
    MEDIUMTEXT = 12
    LONGTEXT = 13
    BLOB = 14
    MEDIUMBLOB = 15
    LONGBLOB = 16
    JSON = 17
    OTHER = 18


DDL = {T.BOOL: "TINYINT(1)", T.INT: "INT", T.BIGINT: "BIGINT", T.DECIMAL: "DECIMAL(65,30)",
       T.DOUBLE: "DOUBLE", T.DATETIME: "DATETIME(3)", T.OID: "CHAR(24)", T.UUID: "CHAR(36)",
       T.KEYTEXT: "VARBINARY(1024)", T.VARCHAR: "VARCHAR(255)", T.TEXT: "TEXT",
       T.MEDIUMTEXT: "MEDIUMTEXT", T.LONGTEXT: "LONGTEXT", T.BLOB: "BLOB", T.MEDIUMBLOB: "MEDIUMBLOB",
       T.LONGBLOB: "LONGBLOB", T.JSON: "JSON"}

_TEXT_BYTES, _MEDIUM_BYTES, KEY_TEXT_BYTES = 65535, 16777215, 1024


def is_text(t):
    return T.VARCHAR <= t <= T.LONGTEXT


def is_blob(t):
    return T.BLOB <= t <= T.LONGBLOB


def parse_column_type(column_type, json_comment):
    """information_schema.COLUMNS.COLUMN_TYPE -> T (display widths such as bigint(20) accepted)."""
    t = column_type.lower()
    base = re.sub(r"\(\d+\)$", "", t)
    if t == "tinyint(1)":
        return T.BOOL
    if base in ("int", "bigint"):
        return T.INT if base == "int" else T.BIGINT
    if t == "json" or (t == "longtext" and json_comment):
        return T.JSON
    by_ddl = {v.lower(): k for k, v in DDL.items()}
    return by_ddl.get(t, T.OTHER)


def text_type(text, varchar_allowed=True):
    if varchar_allowed and len(text) <= 255:
        return T.VARCHAR
    size = len(text.encode("utf-8", "surrogatepass"))
    return T.TEXT if size <= _TEXT_BYTES else T.MEDIUMTEXT if size <= _MEDIUM_BYTES else T.LONGTEXT


def blob_type(size):
    return T.BLOB if size <= _TEXT_BYTES else T.MEDIUMBLOB if size <= _MEDIUM_BYTES else T.LONGBLOB


@dataclass
class Value:
    """One mapped value: natural type, text form, raw bytes (binary), fixed-notation decimal (when
    it fits DECIMAL(65,30)) and whether an integer is exact in a double."""
    type: T
    text: str | None = None
    raw: bytes | None = None
    decimal: str | None = None
    exact_in_double: bool = True

    @property
    def is_null(self):
        return self.type == T.NULL


NULL = Value(T.NULL)


def fixed_decimal(s):
    """Fixed notation of a numeric string if it fits DECIMAL(65,30) (<= 35 integer digits, <= 30
    fraction digits once trailing zeros are dropped), else None (NaN, Infinity, too many digits)."""
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d.is_zero():
        return "0"
    d = d.normalize()
    sign, digits, exp = d.as_tuple()
    int_len = len(digits) + exp
    frac_len = max(0, -exp)
    if int_len > 35 or frac_len > 30:
        return None
    return format(d, "f")


def decimal_column_text(fixed):
    whole, _, frac = fixed.partition(".")
    return f"{whole}.{frac.ljust(30, '0')}"


def widen(current, v, varchar_allowed):
    nat = v.type
    def text(floor):
        t = text_type(v.text, varchar_allowed or floor == T.VARCHAR)
        return max(floor, t) if is_text(floor) else t
    if nat == T.NULL or nat == current:
        return current
    if current == T.NULL:
        return text(T.NULL) if is_text(nat) else nat
    if current == T.OTHER:
        return current
    if is_text(current):
        return text(current)
    if is_blob(current):
        return max(current, blob_type(len(v.raw) if is_blob(nat) else len(v.text.encode("utf-8", "surrogatepass"))))
    if current == T.JSON:
        return T.LONGTEXT
    integral = lambda t: T.BOOL <= t <= T.DECIMAL  # noqa: E731
    if integral(current) and integral(nat):
        return max(current, nat)
    if current == T.DOUBLE and nat in (T.BOOL, T.INT):
        return current
    if current == T.DOUBLE and nat == T.BIGINT and v.exact_in_double:
        return current
    if current in (T.BOOL, T.INT) and nat == T.DOUBLE:
        return nat
    if current in (T.BIGINT, T.DECIMAL) and nat == T.DOUBLE and v.decimal is not None:
        return T.DECIMAL
    return text(T.NULL)


def widen_key(current, v):
    if current in (T.NULL, v.type, T.OTHER):
        return v.type if current == T.NULL else current
    return T.KEYTEXT


def stored_text(v, column):
    if column == T.DECIMAL and v.decimal is not None:
        return decimal_column_text(v.decimal)
    if is_blob(column) and is_blob(v.type):
        return v.raw
    return v.text


def converted_to_text(v, previous):
    """What an ALTER from `previous` to a text type makes of a stored value."""
    if v.is_null:
        return v
    text = stored_text(v, previous)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return Value(text_type(text), text)


_ESCAPES = {"\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z", "\\": "\\\\", "'": "\\'", '"': '\\"'}
_ESCAPE_RE = re.compile("[\0\n\r\x1a\\\\'\"]")


def quote_string(text):
    return "'" + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text) + "'"


def quote_identifier(name):
    return "`" + name.replace("`", "``") + "`"


_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def literal(v, column):
    if v.is_null:
        return "NULL"
    # Unquoted only when the text is a number: a value of another type (an _id that is a string
    # where the key column is still BIGINT) must stay data, never become SQL.
    if column in (T.BOOL, T.INT, T.BIGINT, T.DOUBLE) and _NUMBER_RE.fullmatch(v.text):
        return v.text
    if column == T.DECIMAL:
        return v.decimal if v.decimal is not None else quote_string(v.text)
    if is_blob(column) and is_blob(v.type):
        return "X'" + v.raw.hex().upper() + "'"
    return quote_string(v.text)
