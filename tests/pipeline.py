"""Runs the product's processes (build/mongo2mysql capture, apply) for tests and reads what they
published, the way a user's consumer would (read_committed)."""
import json
import os
import signal
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

import stack


class Process:
    """A mongo2mysql subcommand running in the background, its output in a log file."""

    def __init__(self, args, log_path):
        self.args = [str(stack.BINARY)] + [str(a) for a in args]
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout=60) -> int:
        """SIGTERM and wait: a clean stop returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self):
        """SIGKILL: a crash at whatever point the process is."""
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def assert_running(self):
        assert self.proc.poll() is None, f"{self.args[1]} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"


def start_capture(tmp_path, db, collection=None, prefix="m2m", name="capture", extra=()):
    """build/mongo2mysql capture as a Process; its capture name is kept as .name."""
    args = ["capture", "--mongo-uri", stack.MONGO_URI, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
            "--db", db, "--topic-prefix", prefix, "--name", name, "--max-batch-ms", "100", *extra]
    if collection:
        args += ["--collection", collection]
    process = Process(args, tmp_path / f"capture-{name}.log")
    process.name = name
    return process


def stream_checkpoint(prefix, name):
    """capture `name`'s committed stream checkpoint (docs/checkpoints.md), or None."""
    topic = f"{prefix}.__checkpoints"
    if topic_end_offsets(topic) == 0:
        return None
    records = {k: v for k, v in ((m[0], m[1]) for m in read_all_raw(topic))}
    value = records.get(f"stream/{name}")
    return None if value is None else json.loads(value)


def wait_for_checkpoint(prefix, capture, name=None, timeout=300):
    """Waits until capture has committed its start point and finished its snapshot: changes made
    after that reach Kafka as stream events, never as snapshot reads."""
    name = name or capture.name

    def streaming():
        capture.assert_running()
        checkpoint = stream_checkpoint(prefix, name)
        return checkpoint is not None and checkpoint.get("snapshot") == "done"
    stack.wait_for(streaming, timeout=timeout, interval=0.3, what=f"capture {name} to stream")


def read_topic(topic, expected, timeout=120, process=None):
    """Reads `topic` from the start with read_committed until `expected` messages arrived.
    Returns [(key, value)] with both decoded from JSON (None for a null key or value)."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("reader"),
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            if process:
                process.assert_running()
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            decode = lambda b: None if b is None else json.loads(b)  # noqa: E731
            out.append((decode(msg.key()), decode(msg.value())))
    finally:
        consumer.close()
    assert len(out) >= expected, f"{topic}: {len(out)} of {expected} messages after {timeout}s: {out[-3:]}"
    return out


def read_all(topic, timeout=120):
    """Every committed message of `topic` up to its current end, read_committed: for exact counts
    (read_topic stops at the count it expects and cannot tell if more follow). Partitions are
    concatenated; see read_all_by_partition for per-partition order."""
    return [m for messages in read_all_by_partition(topic, timeout).values() for m in messages]


def read_all_raw(topic, timeout=120):
    """Like read_all, with keys and values as text, undecoded."""
    return [m for messages in read_all_by_partition(topic, timeout, decode=None).values() for m in messages]


def read_all_by_partition(topic, timeout=120, decode=json.loads):
    """{partition: [(key, value)]} of every committed message of `topic` up to its current end,
    each key and value passed through `decode` (None leaves them as text)."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("reader"),
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending, out = set(partitions), {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"{topic}: not at its end after {timeout}s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                pending.discard(msg.partition())
                continue
            convert = lambda b: None if b is None else (decode(b) if decode else b.decode())  # noqa: E731
            out[msg.partition()].append((convert(msg.key()), convert(msg.value())))
        return out
    finally:
        consumer.close()


def topic_end_offsets(topic):
    """Total of the high watermarks of `topic`'s partitions; 0 while the topic does not exist."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("w")})
    try:
        md = consumer.list_topics(timeout=30).topics.get(topic)
        if md is None:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in md.partitions)
    finally:
        consumer.close()
