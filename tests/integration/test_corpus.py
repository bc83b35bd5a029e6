"""The generated corpus (tests/corpus: maps keyed by data, deep nesting, arrays of arrays, wide
documents, hostile field names, the mapping's own column names, updates, every BSON type, _id of
every type, realistic orders, users and events) through the real pipeline: written to a MongoDB
database of its own (half before capture starts, so they arrive as snapshot reads, half while it
streams, then the updates), captured into Kafka by one database-scope capture, applied by an engine
into a MySQL database of its own. Every document must land: nothing quarantined or dead-lettered,
`mongo2mysql verify` clean, one root row per document, and each class's chosen values found where
the column and table comments say they are.

Each class is a collection of its own and is applied (its own engine run and consumer group) and
verified on its own, so a class that stops the engine or verify hides nothing of the others. A
failure prints one section per class: root rows against documents, the first quarantine errors and
dead letters, verify's differences and the checks that failed. M2M_CORPUS_REPORT=<file> also
writes that report to <file>.<engine>.

Times on the shared 2-core machine: the native test 2-3 minutes; the Spark test about 15 minutes
(a class whose query does not finish is stopped after engines.spark's 600 s); the large documents under a
minute."""
import os
import re
import subprocess

import pytest
from bson import json_util
from confluent_kafka.admin import AdminClient

import corpus
import engines
import pipeline
import scenarios
import stack
from corpus import report

SENTINEL = "zz_corpus_end"


class Source:
    """The corpus in a MongoDB database of its own, captured into topics of its own."""

    def __init__(self, mongo, classes, workdir, capture_extra=()):
        self.classes = classes
        self.db = mongo[stack.unique("corpus")]
        self.prefix = stack.unique("corpus")
        try:
            self._load(workdir, capture_extra)
        except BaseException:
            self.drop()
            raise

    def _load(self, workdir, capture_extra):
        classes = self.classes
        for c in classes:
            self._insert(c, c.documents[0::2])
        capture = pipeline.start_capture(workdir, self.db.name, prefix=self.prefix, name="corpus",
                                         extra=["--max-batch-events", "200", *capture_extra])
        try:
            pipeline.wait_for_checkpoint(self.prefix, capture, timeout=600)
            for c in classes:
                self._insert(c, c.documents[1::2])
            for c in classes:
                for op in c.ops:
                    try:
                        getattr(self.db[c.name], op.method)(*op.args, **op.kwargs)
                    except Exception as e:  # the stand-in refusing an operation is a fault of the corpus
                        raise AssertionError(f"class {c.name}: MongoDB refused {op.method}{op.args!r:.300}: {e}")
            self.db[SENTINEL].insert_one({"_id": "end"})
            # capture commits its batches in order: once the sentinel is readable, so is every event
            # written before it.
            pipeline.read_until(self.topic(SENTINEL), lambda k, v: pipeline.has_id(k, "end"), timeout=600,
                                process=capture)
        finally:
            status = capture.stop()
        assert status == 0, capture.log()[-3000:]
        self.topics = [t for t in (self.topic(c.name) for c in classes) if pipeline.topic_end_offsets(t) > 0]
        dead = f"{self.prefix}.__dead_letter"
        self.dead_letters = report.dead_letters(pipeline.read_all(dead) if pipeline.topic_end_offsets(dead) else [])

    def _insert(self, c, documents):
        for d in documents:
            try:
                self.db[c.name].insert_one(d)
            except Exception as e:
                raise AssertionError(f"class {c.name}: MongoDB refused _id={d['_id']!r:.100}: {e}")

    def topic(self, collection):
        return f"{self.prefix}.{self.db.name}.{collection}"

    def drop(self):
        self.db.client.drop_database(self.db.name)
        admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        ours = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.prefix + ".")]
        if ours:
            for f in admin.delete_topics(ours).values():
                f.result(60)


@pytest.fixture(scope="module")
def corpus_source(mongo, tmp_path_factory):
    """The corpus without its slow class, captured once for both engines."""
    source = Source(mongo, corpus.generate(), tmp_path_factory.mktemp("corpus"))
    yield source
    source.drop()


def verify(source, database, collection):
    """`mongo2mysql verify` of one collection: (exit status, output lines); when it exits non-zero
    without naming a difference, the last line is its error."""
    result = subprocess.run(
        [str(stack.BINARY), "verify", "--mongo-uri", stack.MONGO_URI, "--db", source.db.name,
         "--collections", collection, "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
         "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, "--recheck-after", "0"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    lines = result.stdout.splitlines()
    status = result.returncode
    unfindable = standin_unfindable(source, collection)
    if unfindable:
        kept = [line for line in lines
                if not (line.startswith(f"extra {collection} _id=") and line.split("_id=", 1)[1] in unfindable)]
        if len(kept) < len(lines) and not report.verify_differences(kept):
            status = 0
        lines = kept + [f"(the stand-in cannot find _id {', '.join(sorted(unfindable))} by equality; "
                        "verify's extra rows for them are left out)"]
    if status != 0 and not report.verify_differences(lines):
        lines.append(f"verify exited {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")
    return status, lines


def standin_unfindable(source, collection):
    """The _ids of documents the MongoDB stand-in holds but cannot find by equality, as verify labels
    them (relaxed JSON, no spaces). Now and then it loses MinKey and MaxKey _ids from its index
    (find({_id: MaxKey}) finds nothing while a scan returns the document): verify, which looks
    documents up by _id as real MongoDB serves them, then reports their rows as extra."""
    coll = source.db[collection]
    return {json_util.dumps(d["_id"], json_options=json_util.RELAXED_JSON_OPTIONS).replace(" ", "")
            for d in coll.find({}, {"_id": 1}) if coll.find_one({"_id": d["_id"]}, {"_id": 1}) is None}


def apply_and_report(source, engine_name, mysql_db, workdir):
    """Applies each class's topic with the engine (a run and a consumer group per class, so a class
    that stops the engine does not hide the others), verifies each class, and returns (report,
    number of problems)."""
    database, conn = mysql_db
    runs = {}
    for c in source.classes:
        topic = source.topic(c.name)
        engine_error = None
        if topic in source.topics:
            run = scenarios.ScenarioRun({}, source.prefix, [topic], database, stack.unique("g"), None, None,
                                        workdir / c.name)
            run.workdir.mkdir(parents=True, exist_ok=True)
            try:
                query = engines.ENGINES[engine_name](run)
                # engines.spark waits 600 s for its query and returns it even if it still runs.
                if getattr(query, "isActive", False):
                    query.stop()
                    engine_error = "the Spark query had not finished after 600 s (stopped)"
            except Exception as e:  # the report says what landed even when the engine stops
                engine_error = f"{type(e).__name__}: {e}"
                (run.workdir / "engine-error.txt").write_text(engine_error)
        else:
            engine_error = f"capture published nothing to {topic}"
        runs[c.name] = (engine_error, *verify(source, database, c.name))
    quarantine = "_m2m_quarantine"  # both engines: the core's
    text, problems = report.build(conn, database, source.db, source.classes, quarantine, source.dead_letters, runs)
    text = f"corpus through capture and the {engine_name} engine ({problems} problems)\n{text}"
    (workdir / "corpus-report.txt").write_text(text)
    if os.environ.get("M2M_CORPUS_REPORT"):
        with open(f"{os.environ['M2M_CORPUS_REPORT']}.{engine_name}", "a") as f:
            f.write(text + "\n\n")
    return text, problems


def class_outcomes(text):
    return dict(re.findall(r"^class (\w+) \[(ok|FAILS)\]", text, re.M))


def test_corpus_lands_through_native_apply(corpus_source, mysql_db, tmp_path):
    text, problems = apply_and_report(corpus_source, "native", mysql_db, tmp_path / "native")
    outcomes = class_outcomes(text)
    assert outcomes, text
    assert [name for name, outcome in outcomes.items() if outcome == "FAILS"] == [], text


@pytest.mark.spark
@pytest.mark.timeout(1800)
def test_corpus_lands_through_spark(corpus_source, mysql_db, tmp_path):
    text, problems = apply_and_report(corpus_source, "spark", mysql_db, tmp_path / "spark")
    assert problems == 0, text


def test_large_documents_land_through_native_apply(mongo, mysql_db, tmp_path):
    """A 15 MB string, an 8 MB binary and an update of the first: capture is allowed messages that
    large (--max-message-bytes 64 MiB); what else the path needs is the product's to arrange."""
    large = [c for c in corpus.generate(include_slow=True) if c.slow]
    source = Source(mongo, large, tmp_path, capture_extra=["--max-message-bytes", str(64 * 1024 * 1024)])
    try:
        text, problems = apply_and_report(source, "native", mysql_db, tmp_path / "native")
        assert problems == 0, text
    finally:
        source.drop()


def test_the_corpus_is_what_the_issue_asks_for():
    """At least 300 documents besides the large ones, deterministic, one collection per class."""
    classes = corpus.generate()
    assert sum(len(c.documents) for c in classes) >= 300
    assert len({c.name for c in classes}) == len(classes)
    assert all(re.fullmatch(r"[a-z]+", c.name) for c in classes)
    assert corpus.stats(corpus.generate()) == corpus.stats(classes)
