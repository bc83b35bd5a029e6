"""A generated corpus of realistic and hostile MongoDB documents (issue #15, item 7).

Each class of documents goes to a collection of its own (named after the class), so whatever fails
names its class. A class has a realistic part (shapes real applications store) and a hostile part
(the limits of MongoDB, MySQL and the mapping), the operations to run on it once capture streams,
and a few values to find in MySQL afterwards (`Check`). Everything comes from a fixed seed, in
pure Python with the driver's BSON types, so CI regenerates the same corpus and nothing large is
kept in git.

    python tests/corpus                   # one line per class: documents, operations, checks, size

What the MongoDB stand-in cannot hold, and therefore is not here (the recorded events in
tests/fixtures/change_events/ cover it): JavaScript with scope and binary subtypes other than 0, 3
and 4 (the stand-in drops the connection), symbol, undefined and DBPointer (the driver cannot
write them), updates by array position (`items.1.q`: the stand-in applies them but emits no
change event), top-level dotted names in a replace or in a document being updated (the stand-in
refuses them; real MongoDB 5.0+ accepts the replace), and pipeline updates ($setField).
"""
from dataclasses import dataclass, field


@dataclass
class Check:
    """A value that must be found in MySQL after the corpus is applied: the document with this
    `_id`, the value at `path` (field names; ints are array positions), equal to `expected` (a
    string or an int, compared with the text MySQL returns or with the parsed JSON value)."""
    _id: object
    path: tuple
    expected: object
    why: str


@dataclass
class Op:
    """A pymongo Collection method and its arguments, run in order once capture streams:
    ("update_one", filter, update, {"upsert": True}), ("replace_one", filter, doc),
    ("delete_one", filter), ("insert_one", doc), ("update_many", filter, update)."""
    method: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass
class CorpusClass:
    name: str                 # also its collection
    description: str
    documents: list           # even positions are written before capture starts (snapshot reads),
    ops: list = field(default_factory=list)      # odd ones while it streams (inserts), then ops
    checks: list = field(default_factory=list)
    slow: bool = False        # the large documents: a test of their own


SEED = 20240615


def generate(seed=SEED, include_slow=False):
    """Every class of the corpus, in a fixed order; the same seed gives the same corpus."""
    from corpus import classes

    out = []
    for build in classes.BUILDERS:
        c = build(seed)
        if include_slow or not c.slow:
            out.append(c)
    return out


def stats(corpus_classes):
    """(name, documents, operations, checks, approximate BSON bytes) per class."""
    import bson

    return [(c.name, len(c.documents), len(c.ops), len(c.checks), sum(len(bson.encode(d)) for d in c.documents))
            for c in corpus_classes]
