"""`make faults`: the fault campaign. A steady workload flows MongoDB -> capture -> Kafka -> apply ->
MySQL while each process is failed in turn, `--cycles` times each: kill -9 of capture, kill -9 of
the Kafka broker, kill -9 of MariaDB, a stop and restart of the MongoDB stand-in, and the engine's
own. With --engine native (two `mongo2mysql apply` members of one group): kill -9 of an apply
member, and SIGSTOP of one of them for longer than its session timeout (so the group fences it and
hands its partitions to the other), then SIGCONT. With --engine spark (the Spark job on a
standalone cluster on loopback): kill -9 of the Spark driver, and kill -9 of a Spark executor.

Everything runs on a stack of the campaign's own (stack/ctl.sh with its own state folder, --state,
and free ports), never the shared one: servers are killed here. Capture and the apply members (or
the Spark driver) run under a supervisor as systemd runs a service (Restart=always, RestartSec=1 s);
nothing else touches them, so what a failure costs them shows as restarts. Killed servers are
started again through stack/ctl.sh. After each failure the campaign waits until the end-to-end lag
is back to what it was (heartbeat documents, one in every partition, written after the failure
ended, visible in MySQL with a lag under --lag-threshold, or twice the p95 measured before the
first failure if higher), and records that time.

At the end the writer stops, the pipeline drains, and the run must show: `mongo2mysql verify`
clean; every document in MySQL as the writer's log of acknowledged writes left it (count, seq and
update counter of each); every acknowledged write in Kafka exactly once per document, in order
(read_committed); nothing quarantined or dead-lettered. Figures go to
bench/results/faults-<time>/faults.json and faults.md, and are printed.

  .stack/venv/bin/python bench/faults.py --cycles 20      # the issue's bar: 20 of each kind
  .stack/venv/bin/python bench/faults.py --cycles 1 --kinds capture-kill,kafka-kill
  .stack/venv/bin/python bench/faults.py --engine spark --cycles 20 --kinds spark-driver-kill,spark-executor-kill
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import benchlib
import faultlib
import spark_cluster
from benchlib import ROOT, stack

DB = "faults"
PREFIX = "f"
GROUP = "faults"
CAPTURE = "faults"
COLLECTIONS = ("orders", "users", "events")
# Candidate heartbeat _ids per collection: enough that each of the topic's partitions holds one.
HEARTBEAT_CANDIDATES = 16


class NativeEngine:
    """`mongo2mysql apply`, two members of one consumer group, each with a static member id (the
    docs' advice, so that a restarted member takes its partitions back at once) and the campaign's
    session timeout, and without --mongo-uri, as by default (--apply-lookup adds it): an update
    whose document capture's lookup no longer found (deleted since, common while capture catches up
    after an outage) comes marked m2m.document_gone and is applied as the delete it precedes
    (docs/apply.md, "Updates that need the full document").
    An engine gives the campaign its supervised processes and its own failures (FAULTS: kind ->
    method)."""

    name = "native"
    FAULTS = {"apply-kill": "kill", "apply-stop": "stop_member"}
    BASELINE_S = 10.0
    RECOVER_TIMEOUT_S = 300.0

    def __init__(self, campaign):
        self.c = campaign
        self.members = []
        self._next = 0

    def settings(self):
        return {"apply_members": 2, "session_timeout_ms": self.c.args.session_timeout_ms,
                "apply_mongo_uri": self.c.args.apply_lookup}

    def describe(self):
        return (f"2 apply members in one group (session timeout {self.c.args.session_timeout_ms / 1000:.0f} s)")

    def start(self):
        c = self.c
        for member in ("a", "b"):
            args = [str(c.binary), "apply", "--kafka-bootstrap", c.stack.kafka, "--topics", ",".join(c.topics.values()),
                    "--group", GROUP, *c.mysql_args(), "--mysql-database", DB,
                    "--kafka", f"group.instance.id=apply-{member}",
                    "--kafka", f"session.timeout.ms={c.args.session_timeout_ms}"]
            if c.args.apply_lookup:
                args += ["--mongo-uri", c.stack.mongo_uri]
            log = c.work / f"apply-{member}.log"
            self.members.append(faultlib.Supervised(f"apply-{member}", args, c.env, log).start())

    def next_member(self):
        member = self.members[self._next % len(self.members)]
        self._next += 1
        return member

    def kill(self):
        member = self.next_member()
        member.kill()
        return {"target": member.name}

    def stop_member(self):
        """SIGSTOP for the session timeout and 5 s more, then SIGCONT. Also measures how long the
        group took to fence it and the other member to catch up with its partitions."""
        c, member = self.c, self.next_member()
        stopped_m, stopped_w = time.monotonic(), time.time()
        hold = c.args.session_timeout_ms / 1000 + 5
        member.signal(signal.SIGSTOP)
        try:
            taken_over = c.probe.wait_recovered(stopped_w, c.threshold, timeout=hold)
            time.sleep(max(0.0, stopped_m + hold - time.monotonic()))
        finally:
            member.signal(signal.SIGCONT)
        return {"target": member.name, "stopped_s": round(hold, 1),
                "taken_over_s": None if taken_over is None else round(taken_over - stopped_m, 1)}

    def supervised(self):
        return self.members

    def stop(self):
        for member in self.members:
            member.stop()


class SparkEngine:
    """The Spark job (spark/m2m_spark) on a Spark standalone cluster on loopback: a master and two
    workers of one core each from the pyspark distribution (tests/spark_cluster.py, as the cluster
    test starts them), the job spark-submitted to it as the README's "Spark" section says: the
    package as a zip (--py-files), the job's jar (--jars) and libm2m_jni.so (--files), its
    group in MySQL's _m2m_offsets the campaign's, its checkpoint in the campaign's work folder, and
    --mongo-uri only with --apply-lookup, as native apply. The driver (spark-submit's JVM and the job's Python, one
    process group) runs under the supervisor like the native members, so a dead driver is started
    again from its checkpoint. The executors are the workers' to restart, as in production."""

    name = "spark"
    FAULTS = {"spark-driver-kill": "kill_driver", "spark-executor-kill": "kill_executor"}
    # Its lag rises and falls with each micro-batch (seconds to tens of seconds on a busy machine).
    BASELINE_S = 90.0
    # A new driver starts its JVM, registers a new application, gets new executors whose Python
    # workers load the extension, and only then applies what piled up: 2 to 5 minutes on a
    # 2-core machine at a load of 20-30.
    RECOVER_TIMEOUT_S = 900.0

    def __init__(self, campaign):
        self.c = campaign
        self.cluster = self.driver = None
        self._next = 0

    TRIGGER = "1 second"  # the job's default --trigger-interval

    def settings(self):
        return {"spark_workers": 2, "spark_worker_cores": 1, "spark_trigger_interval": self.TRIGGER,
                "apply_mongo_uri": self.c.args.apply_lookup}

    def describe(self):
        return (f"the Spark job on a standalone cluster (a master, 2 workers of 1 core and 1 GB: one executor "
                f"each; a micro-batch every {self.TRIGGER} at most)")

    def start(self):
        c = self.c
        folder = c.work / "spark"
        self.cluster = spark_cluster.Cluster(folder, port=faultlib.free_ports(1)[0],
                                             preexec_fn=faultlib.die_with_parent).start()
        job = ["--kafka-bootstrap", c.stack.kafka, "--topics", ",".join(c.topics.values()), *c.mysql_args(),
               "--mysql-database", DB, "--group", GROUP, "--checkpoint", str(c.work / "spark-checkpoint"),
               "--trigger-interval", self.TRIGGER]
        if c.args.apply_lookup:
            job += ["--mongo-uri", c.stack.mongo_uri]
        self.driver = faultlib.Supervised(
            "spark-driver", self.cluster.submit_command(folder, benchlib.BUILD, job),
            spark_cluster.submit_env(c.env, c.stack.mysql["password"]), c.work / "spark-driver.log").start()

    def kill_driver(self):
        self.driver.kill()
        return {"target": "spark-driver"}

    def kill_executor(self):
        """kill -9 of the executor JVM of one worker (each in turn), as the OOM killer would; the
        worker's executor then exits lost, the master has the worker launch a new one, and the
        driver retries the lost tasks. Down until the new executor runs."""
        worker = self._next % len(self.cluster.workers)
        self._next += 1
        executors = stack.wait_for(lambda: self.cluster.executors(worker), timeout=self.c.args.recover_timeout,
                                   interval=0.5, what=f"an executor on spark worker {worker + 1}")
        victim = executors[0]
        os.kill(victim, signal.SIGKILL)
        stack.wait_for(lambda: not faultlib.alive(victim), timeout=60, what=f"executor {victim} to die")
        stack.wait_for(lambda: set(self.cluster.executors(worker)) - {victim}, timeout=self.c.args.recover_timeout,
                       interval=0.5, what=f"a new executor on spark worker {worker + 1}")
        return {"target": f"executor of spark worker {worker + 1}"}

    def supervised(self):
        return [self.driver]

    def stop(self):
        if self.driver is not None:
            self.driver.stop()
        if self.cluster is not None:
            self.cluster.stop()


ENGINES = {"native": NativeEngine, "spark": SparkEngine}
# Failures of the pipeline whatever the engine (Campaign's methods), then each engine's.
COMMON = {"capture-kill": "kill_capture", "kafka-kill": "kill_kafka", "mariadb-kill": "kill_mariadb",
          "mongo-restart": "restart_mongo"}
ORDER = ("capture-kill", "apply-kill", "spark-driver-kill", "spark-executor-kill", "kafka-kill", "mariadb-kill",
         "mongo-restart", "apply-stop")
DESCRIPTION = {"capture-kill": "kill -9 of capture", "apply-kill": "kill -9 of an apply member",
               "spark-driver-kill": "kill -9 of the Spark driver (spark-submit's process group)",
               "spark-executor-kill": "kill -9 of a Spark executor (CoarseGrainedExecutorBackend)",
               "kafka-kill": "kill -9 of the Kafka broker", "mariadb-kill": "kill -9 of MariaDB (mariadbd)",
               "mongo-restart": "stop and restart of the MongoDB stand-in",
               "apply-stop": "SIGSTOP of an apply member past its session timeout, then SIGCONT"}


def kinds_of(engine):
    """The failure kinds a campaign with `engine` (a name in ENGINES) injects, in ORDER."""
    return [k for k in ORDER if k in COMMON or k in ENGINES[engine].FAULTS]


class Campaign:
    def __init__(self, args):
        self.args = args
        names = ("mysql", "kafka", "controller", "mongo")
        ports = dict(zip(names, map(int, args.ports.split(",")))) if args.ports else None
        self.stack = faultlib.PrivateStack(args.state, ports)
        self.binary = self.stack.state / "work" / "mongo2mysql"
        self.env = {**self.stack.env, "M2M_MYSQL_PASSWORD": self.stack.mysql["password"]}
        self.work = self.stack.state / "work"
        self.topics = {c: f"{PREFIX}.{DB}.{c}" for c in COLLECTIONS}
        self.engine = ENGINES[args.engine](self)
        self.capture = self.writer = self.probe = None
        self.records = []
        self.log_lines = []

    def say(self, text):
        print(f"faults: {text}", flush=True)
        self.log_lines.append(text)

    def mysql_args(self):
        return ["--mysql-host", self.stack.mysql["host"], "--mysql-port", str(self.stack.mysql["port"]),
                "--mysql-user", self.stack.mysql["user"]]

    def supervised(self):
        return [self.capture, *self.engine.supervised()]

    # -- setup ------------------------------------------------------------------------------

    def setup(self):
        started = time.monotonic()
        self.stack.fresh()
        self.stack.up()
        self.work.mkdir()
        # A copy: a rebuild during the campaign (it runs for most of an hour) must not replace, or
        # for the seconds of linking remove, the binary the supervisors restart.
        shutil.copy2(benchlib.BUILD / "mongo2mysql", self.binary)
        self.say(f"own stack up in {time.monotonic() - started:.0f} s: MariaDB :{self.stack.ports['mysql']}, "
                 f"Kafka :{self.stack.ports['kafka']}, MongoDB stand-in :{self.stack.ports['mongo']} "
                 f"(state {self.stack.state})")
        self.capture = faultlib.Supervised(
            "capture", [str(self.binary), "capture", "--mongo-uri", self.stack.mongo_uri, "--kafka-bootstrap",
                        self.stack.kafka, "--db", DB, "--name", CAPTURE, "--topic-prefix", PREFIX,
                        "--partitions", str(self.args.partitions)],
            self.env, self.work / "capture.log").start()
        stack.wait_for(lambda: f"capture {CAPTURE}: streaming" in (self.work / "capture.log").read_text(),
                       timeout=300, interval=0.5, what="capture to stream")
        self.writer = faultlib.Writer(self.stack.mongo_uri, DB, COLLECTIONS, self.args.rate, self.args.documents,
                                      self.work / "writer.jsonl", seed=self.args.seed, batch=self.args.batch,
                                      keep_log=not self.args.soak)
        self.writer.heartbeat_ids = self._heartbeats()
        self.engine.start()
        self.writer.start()
        self.probe = faultlib.LagProbe(self.stack.mysql, DB, self.writer.heartbeat_ids)
        self.probe.start()
        self.settle()
        baseline_from = len(self.probe.samples)
        time.sleep(self.args.baseline_s)
        lags = [self.probe.lag_s(s) for s in self.probe.samples[baseline_from:] if s[2] is not None]
        self.baseline = benchlib.percentiles(lags)
        # On a busy machine the lag without failures can come near the floor; recovered means back to
        # what it was, so the threshold is at least twice that p95.
        self.threshold = round(max(self.args.lag_threshold, 2 * self.baseline.get("p95", 0)), 1)
        self.say(f"pipeline flowing after {time.monotonic() - started:.0f} s; lag over {self.args.baseline_s:.0f} s "
                 f"without failures: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.baseline.items())
                 + f"; recovered from now on means a lag under {self.threshold} s")

    def settle(self, timeout=900):
        """Waits until the pipeline flows and has caught up with what piled up while it started:
        heartbeats written from now on reach MySQL, and the time that takes is under --lag-threshold
        or no longer shrinking by a fifth from one round to the next. (The Spark job's first batches
        apply minutes of writes while its JVMs warm up; each later one the writes of the one before.)"""
        deadline = time.monotonic() + timeout
        took_before = None
        while True:
            since_m, since_w = time.monotonic(), time.time()
            seen = self.probe.wait_recovered(since_w, float("inf"), timeout=max(0.0, deadline - since_m))
            assert seen, f"the pipeline did not come up: the heartbeats did not reach MySQL in {timeout} s"
            took = seen - since_m
            if took <= self.args.lag_threshold or (took_before is not None and took > 0.8 * took_before):
                return
            took_before = took

    def _heartbeats(self):
        """Writes candidate heartbeat documents, finds the partition each landed in, keeps one per
        partition of every topic."""
        candidates = [(c, -k) for c in COLLECTIONS for k in range(1, HEARTBEAT_CANDIDATES + 1)]
        self.writer.heartbeat(candidates)
        wanted = {c: {-k for k in range(1, HEARTBEAT_CANDIDATES + 1)} for c in COLLECTIONS}

        def placed():
            found = faultlib.heartbeat_partitions(self.stack.kafka, self.topics.values())
            got = {c: {i for ids in found.get(self.topics[c], {}).values() for i in ids} for c in COLLECTIONS}
            return got == wanted and found
        found = stack.wait_for(placed, timeout=180, interval=1, what="the heartbeat documents in Kafka")
        chosen = []
        for c in COLLECTIONS:
            for partition, ids in sorted(found[self.topics[c]].items()):
                assert ids, f"no heartbeat candidate landed in {self.topics[c]}[{partition}]; raise HEARTBEAT_CANDIDATES"
                chosen.append((c, max(ids)))
        return chosen

    # -- failures ---------------------------------------------------------------------------

    def kill_capture(self):
        self.capture.kill()
        return {"target": "capture"}

    def kill_server(self, name):
        self.stack.kill(name)
        self.stack.up(name)
        return {"target": name}

    def kill_kafka(self):
        return self.kill_server("kafka")

    def kill_mariadb(self):
        return self.kill_server("mariadb")

    def restart_mongo(self):
        self.stack.down("mongo")
        self.stack.up("mongo")
        return {"target": "mongo"}

    def fault(self, kind):
        """The function that injects a failure of `kind`: the campaign's or the engine's."""
        return getattr(self, COMMON[kind]) if kind in COMMON else getattr(self.engine, self.engine.FAULTS[kind])

    def inject(self, kind, cycle):
        at_m = time.monotonic()
        record = {"kind": kind, "cycle": cycle, "at_s": round(at_m - self.started, 1)}
        record.update(self.fault(kind)())
        end_m, end_w = time.monotonic(), time.time()
        record["down_s"] = round(end_m - at_m, 1)
        recovered = self.probe.wait_recovered(end_w, self.threshold, timeout=self.args.recover_timeout)
        record["recover_s"] = None if recovered is None else round(recovered - at_m, 1)
        record["_at_m"] = at_m
        self.records.append(record)
        extra = f", taken over after {record['taken_over_s']} s" if record.get("taken_over_s") is not None else ""
        self.say(f"cycle {cycle}/{self.args.cycles} {kind} ({record['target']}): "
                 + (f"recovered in {record['recover_s']} s" if recovered else
                    f"NOT recovered within {self.args.recover_timeout} s") + f" (down {record['down_s']} s{extra})")
        return recovered is not None

    def run_faults(self):
        kinds = self.args.kinds
        for cycle in range(1, self.args.cycles + 1):
            for kind in kinds:
                if self.writer.error:
                    raise RuntimeError(f"the writer stopped: {self.writer.error}")
                if not self.inject(kind, cycle):
                    self.say("stopping the failures: the pipeline did not recover")
                    return False
                time.sleep(self.args.gap)
        return True

    # -- the end ----------------------------------------------------------------------------

    def drain(self):
        """Stops the writer, writes a last heartbeat in every partition and waits until MySQL has it:
        everything before it in its partition is applied then. Returns the seconds that took."""
        self.writer.stop()
        assert self.writer.error is None, f"the writer failed: {self.writer.error}"
        self.writer.heartbeat(final=True)
        self.writer.close()
        started = time.monotonic()
        final = {(c, i): self.writer.model[c][i]["seq"] for c, i in self.writer.heartbeat_ids}

        def applied():
            try:
                conn = self.mysql_conn()
                with conn.cursor() as cur:
                    for (c, i), seq in final.items():
                        cur.execute(f"SELECT seq FROM `{c}` WHERE _id = %s", (i,))
                        row = cur.fetchone()
                        if row is None or row[0] != seq:
                            return False
                conn.close()
                return True
            except Exception:  # noqa: BLE001 - a server still restarting: try again
                return False
        stack.wait_for(applied, timeout=self.args.recover_timeout, interval=1, what="the last writes applied")
        return round(time.monotonic() - started, 1)

    def mysql_conn(self):
        import pymysql

        return pymysql.connect(**self.stack.mysql, database=DB, autocommit=True, connect_timeout=5)

    def status(self):
        """`mongo2mysql status --json`: the product's own view of the lag, which must be 0 everywhere."""
        done = subprocess.run([str(self.binary), "status", "--kafka-bootstrap", self.stack.kafka, "--topic-prefix",
                               PREFIX, "--group", GROUP, *self.mysql_args(), "--mysql-database", DB, "--interval", "0",
                               "--json"], capture_output=True, text=True, env=self.env, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        return {c["collection"]: c["lag_events"] for c in report["collections"]}, report

    def verify(self):
        started = time.monotonic()
        done = subprocess.run([str(self.binary), "verify", "--mongo-uri", self.stack.mongo_uri, "--db", DB,
                               *self.mysql_args(), "--mysql-database", DB, "--recheck-after", "5"],
                              capture_output=True, text=True, env=self.env, timeout=1800)
        return {"status": done.returncode, "clean": done.returncode == 0, "seconds": round(time.monotonic() - started, 1),
                "output": (done.stdout + done.stderr)[-3000:]}

    def compare_mysql(self):
        """Each collection's root table against the writer's model: every document's seq and update
        counter; count and checksum (sum of seq) per collection."""
        out, conn = {}, self.mysql_conn()
        with conn.cursor() as cur:
            for c in COLLECTIONS:
                cur.execute(f"SELECT _id, seq, n FROM `{c}`")
                rows = {int(i): (int(seq), None if n is None else int(n)) for i, seq, n in cur.fetchall()}
                model = {i: (d["seq"], d.get("n")) for i, d in self.writer.model[c].items()}
                out[c] = {"documents": len(model), "rows": len(rows),
                          "seq_sum_writer": sum(s for s, _ in model.values()),
                          "seq_sum_mysql": sum(s for s, _ in rows.values()),
                          "missing": sorted(set(model) - set(rows))[:20],
                          "extra": sorted(set(rows) - set(model))[:20],
                          "stale": sorted(i for i in set(model) & set(rows) if model[i] != rows[i])[:20]}
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                        "TABLE_NAME = '_m2m_quarantine'", (DB,))
            quarantined = 0
            if cur.fetchone()[0]:
                cur.execute("SELECT COUNT(*) FROM _m2m_quarantine")
                quarantined = cur.fetchone()[0]
            cur.execute("SELECT COALESCE(SUM(applied_events), 0) FROM _m2m_offsets WHERE group_id = %s", (GROUP,))
            applied_events = int(cur.fetchone()[0])
        conn.close()
        return out, quarantined, applied_events

    def compare_mongo(self):
        """MongoDB itself against the writer's model (a stand-in that lost acknowledged writes over a
        restart would make every later check meaningless)."""
        import pymongo

        client = pymongo.MongoClient(self.stack.mongo_uri, serverSelectionTimeoutMS=10000)
        out = {}
        for c in COLLECTIONS:
            docs = {d["_id"]: d for d in client[DB][c].find()}
            model = self.writer.model[c]
            out[c] = {"documents": len(docs), "differ": sorted(i for i in set(docs) | set(model)
                                                               if docs.get(i) != model.get(i))[:20]}
        client.close()
        return out

    def dead_letters(self):
        from confluent_kafka import Consumer, TopicPartition

        topic = f"{PREFIX}.__dead_letter"
        consumer = Consumer({"bootstrap.servers": self.stack.kafka, "group.id": stack.unique("dl")})
        try:
            md = consumer.list_topics(timeout=30).topics.get(topic)
            if md is None or md.error is not None:
                return 0
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in md.partitions)
        finally:
            consumer.close()

    def finish(self):
        """Drains, checks, and returns the outcome."""
        outcome = {"drain_s": self.drain()}
        lags = stack.wait_for(lambda: (lambda lag: all(v == 0 for v in lag.values()) and lag)(self.status()[0]),
                              timeout=120, interval=2, what="status to report no lag")
        outcome["status_lag_events"] = lags
        self.probe.stop()
        outcome["verify"] = self.verify()
        outcome["mysql"], outcome["quarantined"], outcome["applied_events"] = self.compare_mysql()
        outcome["mongo"] = self.compare_mongo()
        # The soak's millions of writes are not kept in memory: its check is the final state and counts.
        outcome["kafka"] = (faultlib.audit_topics(self.stack.kafka, self.topics, self.writer.log)
                            if self.writer.log is not None else None)
        kafka = outcome["kafka"] or {"missing": 0, "duplicated": 0, "reordered": 0}
        outcome["dead_letters"] = self.dead_letters()
        outcome["writes"] = {"committed": self.writer.total(), **self.writer.committed,
                             "achieved_per_s": self.writer.achieved_rate(),
                             "unknown_outcome_resolved": self.writer.unknown_outcomes}
        m = outcome["mysql"]
        outcome["lost"] = sum(len(v["missing"]) + len(v["stale"]) for v in m.values()) + kafka["missing"]
        outcome["duplicated"] = sum(len(v["extra"]) for v in m.values()) + kafka["duplicated"]
        outcome["ok"] = (outcome["verify"]["clean"] and outcome["lost"] == 0 and outcome["duplicated"] == 0
                         and kafka["reordered"] == 0 and outcome["quarantined"] == 0
                         and outcome["dead_letters"] == 0
                         and all(v["documents"] == v["rows"] and v["seq_sum_writer"] == v["seq_sum_mysql"]
                                 for v in m.values())
                         and all(not v["differ"] for v in outcome["mongo"].values())
                         and outcome["applied_events"] == outcome["writes"]["committed"])
        return outcome

    def stop(self):
        if self.capture is not None:
            self.capture.stop()
        self.engine.stop()
        if self.writer is not None and self.writer.is_alive():
            self.writer.stop()
        if self.probe is not None:
            self.probe.stop()
        if not self.args.keep:
            self.stack.down()

    # -- the whole run ------------------------------------------------------------------------

    def run(self):
        self.started = time.monotonic()
        result = {"engine": self.args.engine, "cycles": self.args.cycles, "kinds": self.args.kinds,
                  "settings": {"rate_per_s": self.args.rate, "documents_per_collection": self.args.documents,
                               "collections": list(COLLECTIONS), "partitions": self.args.partitions,
                               "lag_threshold_s": self.args.lag_threshold, "restart_sec": 1.0,
                               "writer_batch": self.args.batch, **self.engine.settings(),
                               "engine": self.engine.describe()}}
        try:
            self.setup()
            result["baseline_lag_s"] = self.baseline
            result["settings"]["lag_threshold_s"] = self.threshold
            if self.args.soak:
                result["soak"] = self.soak(self.args.soak)
            else:
                result["all_recovered"] = self.run_faults()
            result["outcome"] = self.finish()
        except Exception as e:  # noqa: BLE001 - the figures so far still go out
            traceback.print_exc()
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            try:
                result["restarts"] = self.attribute_exits()
                result["machine"] = benchlib.machine(self.stack.mysql)
            finally:
                self.stop()
        result["faults"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.records]
        result["summary"] = summarize(self.records, self.args.kinds, self.args.cycles)
        result["seconds"] = round(time.monotonic() - self.started, 1)
        return result

    def soak(self, seconds, interval=10.0):
        """No failures: the workload flows for `seconds` while the resident memory of every process
        and the end-to-end lag are sampled. Memory counts from the first sample after a warm-up (a
        tenth of the run, at most 5 min); its slope is a least-squares fit over the samples after it."""
        processes = {s.name: s for s in self.supervised()}
        started = time.monotonic()
        samples = {name: [] for name in [*processes, "mariadb", "kafka", "mongo"]}
        probe_from = len(self.probe.samples)
        while time.monotonic() - started < seconds:
            if self.writer.error:
                raise RuntimeError(f"the writer stopped: {self.writer.error}")
            t = time.monotonic() - started
            for name in samples:
                pid = processes[name].pid if name in processes else self.stack.pid(name)
                rss = benchlib.rss_mb(pid)
                if rss is not None:
                    samples[name].append((t, rss))
            if int(t) % 300 < interval:
                self.say(f"soak: {t / 60:.0f}/{seconds / 60:.0f} min, "
                         + ", ".join(f"{n} {v[-1][1]:.0f} MB" for n, v in samples.items() if v))
            time.sleep(interval)
        warm = min(300.0, seconds / 10)
        memory = {}
        for name, points in samples.items():
            after = [(t, v) for t, v in points if t >= warm]
            if len(after) < 2:
                continue
            memory[name] = {"first_mb": after[0][1], "last_mb": after[-1][1], "max_mb": max(v for _, v in after),
                            "slope_mb_per_h": round(_slope(after) * 3600, 1)}
        lags = [self.probe.lag_s(p) for p in self.probe.samples[probe_from:]]
        known = [lag for lag in lags if lag is not None]
        return {"seconds": seconds, "warm_up_s": warm, "rss": memory,
                "lag_s": {**benchlib.percentiles(known, (50, 99)), "max": round(max(known), 2) if known else None,
                          "unknown_samples": len(lags) - len(known), "samples": len(lags)}}

    def attribute_exits(self):
        """Each exit the campaign did not cause, given to the failure in progress when it happened."""
        unexpected = []
        for s in self.supervised():
            if s is None:
                continue
            for e in s.exits:
                if e["caused"]:
                    continue
                during = [r for r in self.records if r["_at_m"] <= e["at"]]
                kind = during[-1]["kind"] if during else "setup"
                for r in during[-1:]:
                    r.setdefault("restarts", {}).setdefault(s.name, 0)
                    r["restarts"][s.name] += 1
                unexpected.append({"process": s.name, "during": kind, "status": e["status"],
                                   "at_s": round(e["at"] - self.started, 1), "last_line": e["last_line"]})
        return unexpected


def _slope(points):
    n = len(points)
    mt, mv = sum(t for t, _ in points) / n, sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def summarize(records, kinds, cycles):
    out = {}
    for kind in kinds:
        rs = [r for r in records if r["kind"] == kind]
        times = [r["recover_s"] for r in rs if r["recover_s"] is not None]
        restarts = {}
        for r in rs:
            for name, n in r.get("restarts", {}).items():
                restarts[name] = restarts.get(name, 0) + n
        out[kind] = {"planned": cycles, "injected": len(rs), "survived": len(times), "restarts": restarts,
                     "recover_s": {**benchlib.percentiles(times, (50, 95)), "max": max(times) if times else None},
                     "down_s_p50": benchlib.percentiles([r["down_s"] for r in rs], (50,)).get("p50")}
        takeover = [r["taken_over_s"] for r in rs if r.get("taken_over_s") is not None]
        if takeover:
            out[kind]["taken_over_s_p50"] = benchlib.percentiles(takeover, (50,))["p50"]
    return out


def table(run):
    """The run's figures as text (markdown), like `make bench`'s table."""
    m, s = run["machine"], run["settings"]
    lines = [f"mongo2mysql fault campaign, {m['date']}, commit {m['commit']}, engine {run['engine']}, "
             f"{run['cycles']} cycle(s), {run['seconds'] / 60:.0f} min",
             f"machine: {m['cores']} x {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v and k != "debezium_jdbc"),
             f"workload: {s['rate_per_s']} writes/s (inserts, updates, replaces, deletes) over "
             f"{len(s['collections'])} collections of up to {s['documents_per_collection']} documents, topics of "
             f"{s['partitions']} partitions, {s['engine']}; supervisor restart delay {s['restart_sec']:.0f} s; "
             f"recovered = lag under {s['lag_threshold_s']} s again (without failures: "
             + ", ".join(f"{k} {v:.2f} s" for k, v in run.get("baseline_lag_s", {}).items()) + ")", "",
             "| failure | injected | survived | restarts needed | down, s (p50) | recovered after, s: p50 / p95 / max |",
             "|---|---|---|---|---|---|"]
    if run.get("soak"):
        k = run["soak"]
        lines[0] = lines[0].replace("fault campaign", "soak").replace(
            f"{run['cycles']} cycle(s)", f"{k['seconds'] / 60:.0f} min of workload without failures")
        lines[-2:] = ["| process | resident memory after warm-up, MB | at the end, MB | max, MB | trend, MB/h |",
                      "|---|---|---|---|---|"]
        for name, r in k["rss"].items():
            lines.append(f"| {name} | {r['first_mb']:.0f} | {r['last_mb']:.0f} | {r['max_mb']:.0f} "
                         f"| {r['slope_mb_per_h']:+.1f} |")
        lag = k["lag_s"]
        lines += ["", f"end-to-end lag over the run: p50 {lag.get('p50', 0):.2f} s, p99 {lag.get('p99', 0):.2f} s, "
                  f"max {lag['max']} s ({lag['unknown_samples']} of {lag['samples']} samples unknown)"]
    for kind, f in run["summary"].items():
        r = f["recover_s"]
        fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
        restarts = ", ".join(f"{k} {v}" for k, v in f["restarts"].items()) or "0"
        extra = f" (fenced and taken over after {f['taken_over_s_p50']:.1f} s, p50)" if "taken_over_s_p50" in f else ""
        lines.append(f"| {DESCRIPTION[kind]}{extra} | {f['injected']} | {f['survived']} | {restarts} "
                     f"| {fmt(f['down_s_p50'])} | {fmt(r.get('p50'))} / {fmt(r.get('p95'))} / {fmt(r.get('max'))} |")
    o = run.get("outcome")
    if o:
        w = o["writes"]
        lines += ["", f"writes acknowledged by MongoDB: {w['committed']:,} ("
                  + ", ".join(f"{k} {w.get(k, 0):,}" for k in ("insert", "update", "replace", "delete", "heartbeat"))
                  + f"; {w['unknown_outcome_resolved']} whose answer was lost, resolved by reading back); "
                  f"{w['achieved_per_s']} writes/s achieved",
                  f"end: drained in {o['drain_s']} s; verify {'clean' if o['verify']['clean'] else 'NOT clean'} "
                  f"({o['verify']['seconds']} s); MySQL against the writer's log: "
                  + "; ".join(f"{c} {v['rows']:,}/{v['documents']:,} rows, seq sum "
                              f"{'equal' if v['seq_sum_mysql'] == v['seq_sum_writer'] else 'DIFFERS'}"
                              for c, v in o["mysql"].items()),
                  f"**lost {o['lost']}, duplicated {o['duplicated']}**; "
                  + (f"Kafka: {o['kafka']['events']:,} events, each acknowledged write once and in order per document "
                     f"(missing {o['kafka']['missing']}, duplicated {o['kafka']['duplicated']}, reordered "
                     f"{o['kafka']['reordered']}); " if o["kafka"] else "Kafka not audited event by event (soak); ")
                  + "apply counted "
                  f"{o['applied_events']:,} events applied; quarantined {o['quarantined']}, dead letters "
                  f"{o['dead_letters']}; result: {'PASS' if o['ok'] else 'FAIL'}"]
    if run.get("error"):
        lines += ["", f"the campaign broke off: {run['error']}"]
    for e in run.get("restarts", []):
        lines.append(f"- restart: {e['process']} exited with {e['status']} during {e['during']} at {e['at_s']} s: "
                     f"{e['last_line']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3, help="failures of each kind (default 3; the issue's bar is 20)")
    ap.add_argument("--kinds", help="comma-separated, in this order each cycle: " + ",".join(ORDER)
                    + "; apply-* are the native engine's, spark-* the Spark engine's. Default: all of the engine's")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="native",
                    help="what applies the events: native (two mongo2mysql apply members) or spark (the Spark job on "
                         "a standalone cluster of 2 workers). Default: native")
    ap.add_argument("--rate", type=float, default=150, help="writes per second (default 150)")
    ap.add_argument("--documents", type=int, default=1000, help="documents per collection the writer draws _ids from")
    ap.add_argument("--partitions", type=int, default=2, help="partitions of each topic (default 2: both apply members work)")
    ap.add_argument("--session-timeout-ms", type=int, default=10000, help="apply's session.timeout.ms (default 10000)")
    ap.add_argument("--lag-threshold", type=float, default=3.0,
                    help="end-to-end lag, s, that counts as recovered (at least twice the p95 without failures)")
    ap.add_argument("--recover-timeout", type=float,
                    help="s to wait for recovery before giving up (default: the engine's, native 300, spark 900)")
    ap.add_argument("--gap", type=float, default=2.0, help="s of steady flow between two failures")
    ap.add_argument("--baseline-s", type=float,
                    help="s of lag measured before the first failure (default: the engine's, native 10, spark 90: "
                         "several of its micro-batches)")
    ap.add_argument("--apply-lookup", action="store_true",
                    help="give apply --mongo-uri (default: without, as apply runs by default)")
    ap.add_argument("--batch", type=int, default=1, help="writes per MongoDB round trip (default 1; raise for --soak rates)")
    ap.add_argument("--soak", type=float, default=0,
                    help="seconds of workload without failures, sampling memory and lag (make soak); --cycles ignored")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--state", default=str(ROOT / ".stack-faults"),
                    help="the campaign's stack state folder, emptied at start (default .stack-faults)")
    ap.add_argument("--ports", help="mysql,kafka,kafka-controller,mongo (default: free ports)")
    ap.add_argument("--results", default=str(benchlib.RESULTS), help="folder for faults-<time>/ (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="leave the campaign's stack running at the end")
    args = ap.parse_args()
    args.baseline_s = args.baseline_s or ENGINES[args.engine].BASELINE_S
    args.recover_timeout = args.recover_timeout or ENGINES[args.engine].RECOVER_TIMEOUT_S
    known = kinds_of(args.engine)
    args.kinds = [] if args.soak else [k for k in args.kinds.split(",") if k] if args.kinds else known
    unknown = set(args.kinds) - set(known)
    if unknown:
        ap.error(f"--kinds {sorted(unknown)} do not apply to engine {args.engine}; its kinds: {', '.join(known)}")
    # `kill <pid>` of a campaign in the background stops it as an interrupt does: its daemons, the
    # Spark cluster and its stack go down with it (the finally of Campaign.run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Campaign(args).run()
    name = "soak" if args.soak else "faults"
    folder = Path(args.results) / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}"
    folder.mkdir(parents=True)
    (folder / f"{name}.json").write_text(json.dumps(run, indent=2) + "\n")
    text = table(run)
    (folder / f"{name}.md").write_text(text + "\n")
    print("\n" + text + f"\n\nwritten to {folder}/{name}.json and {name}.md", flush=True)
    ok = not run.get("error") and run.get("outcome", {}).get("ok") and (
        not run["restarts"] if args.soak else
        run.get("all_recovered") and all(f["survived"] == f["planned"] for f in run["summary"].values()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
