"""The Spark engine on a real Spark standalone cluster on loopback: a master and two workers from
the pyspark distribution, one worker killed while the job streams. The executors' tasks apply the
records (the driver holds none), so the tasks of the lost worker run again elsewhere and the MySQL
tables must equal the native engine's, exactly. In micro-batches, the job spark-submitted from a
checkout as the README's "Spark" section says (the package as a zip, the C++ core libm2m_jni.so with
--files, the job's jar with --jars); in Real-time Mode, from the wheel installed on the nodes, as docs/spark.md "On a cluster"
says."""
import os
import subprocess
import threading
import time
from pathlib import Path

import pymysql
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import engines
import scenarios
import spark_cluster
import stack
from test_spark_conformance import _events_applied, checksums, produce, run_for, second_db, workload  # noqa: F401
from test_wheel import site_packages, spark_venv, wheel  # noqa: F401


@pytest.mark.spark
@pytest.mark.timeout(1200)
def test_a_standalone_cluster_applies_exactly_through_a_lost_worker(mysql_db, second_db, tmp_path):
    events = workload(600, seed=23)
    prefix, topic = produce(events, partitions=4)
    reference = scenarios.ScenarioRun({}, prefix, [topic], "", "", None, None, tmp_path)
    run_for(reference, second_db, stack.unique("g"), tmp_path / "native", engines.native)

    cluster = spark_cluster.Cluster(tmp_path).start()
    driver = None
    try:
        database, job = mysql_db[0], stack.unique("job")
        submit = cluster.submit_command(
            tmp_path, stack.ROOT / os.environ.get("M2M_BUILD", "build"),
            ["--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topics", topic, "--mysql-host", stack.MYSQL["host"],
             "--mysql-port", str(stack.MYSQL["port"]), "--mysql-user", stack.MYSQL["user"], "--mysql-database",
             database, "--group", job, "--checkpoint", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger",
             "60", "--max-batch-events", "10", "--trigger-interval", "0 seconds"])
        with open(tmp_path / "driver.log", "w") as log:
            driver = subprocess.Popen(submit, env=spark_cluster.submit_env(os.environ, stack.MYSQL["password"]),
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stack.wait_for(lambda: _events_applied(database, job) >= 150 or driver.poll() is not None, timeout=600,
                       what="a quarter of the events applied on the cluster")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-4000:]
        cluster.kill_worker(0)  # worker 1 and its executor, mid-stream
        stack.wait_for(lambda: _events_applied(database, job) >= len(events) or driver.poll() is not None,
                       timeout=600, what="every event applied by the remaining worker")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-4000:]
        assert _events_applied(database, job) == len(events)
        assert checksums(database) == checksums(second_db)
    finally:
        if driver is not None:
            spark_cluster.kill_group(driver)
        cluster.stop()


@pytest.mark.spark
@pytest.mark.wheel
@pytest.mark.timeout(2400)
def test_real_time_mode_on_a_standalone_cluster_applies_exactly_through_a_lost_worker(spark_venv, mysql_db, second_db,
                                                                                      tmp_path):
    """--real-time on the cluster, the job installed from the wheel (the same venv, so the same path, on
    every node: the driver hands the executors its path of libm2m_jni.so), spark-submitted as
    docs/spark.md "On a cluster" says. Two partitions on two workers of two cores: four task slots,
    still two, a task per partition, once a worker is lost. Events keep coming while Real-time Mode
    runs; the worker whose executor runs writer tasks is killed mid-stream; every event is applied
    once and the tables equal the native engine's."""
    events = workload(600, seed=29)
    prefix = stack.unique("cf")
    encoded = [scenarios.encode(e, prefix, i + 1) for i, e in enumerate(events)]
    topic = encoded[0][0]
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "enable.idempotence": True})

    def send(records):
        for t, k, v in records:
            producer.produce(t, key=k, value=v)
        assert producer.flush(60) == 0

    send(encoded[:100])  # the catch-up's (with the table's first event, a barrier)
    cluster = spark_cluster.Cluster(tmp_path, workers=2, cores=2).start()
    driver, sender = None, None
    try:
        database, job = mysql_db[0], stack.unique("job")
        jar = site_packages(spark_venv) / "m2m_spark" / "jvm" / "m2m-spark.jar"
        submit = cluster.submit_installed_command(tmp_path, jar, [
            "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topics", topic, "--mysql-host", stack.MYSQL["host"],
            "--mysql-port", str(stack.MYSQL["port"]), "--mysql-user", stack.MYSQL["user"], "--mysql-database",
            database, "--group", job, "--checkpoint", str(tmp_path / "checkpoint"), "--real-time",
            "--real-time-epoch", "20 seconds"])
        env = {**spark_cluster.submit_env(os.environ, stack.MYSQL["password"]),
               "PYSPARK_PYTHON": str(spark_venv / "bin" / "python"), "LD_LIBRARY_PATH": ""}
        log_path = tmp_path / "driver.log"
        with open(log_path, "w") as log:
            driver = subprocess.Popen(submit, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

        def running():
            assert driver.poll() is None, log_path.read_text(errors="replace")[-6000:]
            return True

        stack.wait_for(lambda: running() and "real-time mode started" in log_path.read_text(errors="replace"),
                       timeout=900, what="Real-time Mode started on the cluster")
        assert _events_applied(database, job) == 100
        # The rest while Real-time Mode runs: 10 events every half second.
        sender = threading.Thread(target=lambda: [send(encoded[i:i + 10]) or time.sleep(0.5)
                                                  for i in range(100, len(encoded), 10)])
        sender.start()
        stack.wait_for(lambda: running() and _events_applied(database, job) >= 250, timeout=600,
                       what="events applied by Real-time Mode")
        # The worker whose executor has run writer tasks: it loaded libm2m_jni.so.
        writing = [w for w in range(2) if any(
            "libm2m_jni.so" in Path(f"/proc/{pid}/maps").read_text() for pid in cluster.executors(w))]
        assert writing, "no executor loaded libm2m_jni.so"
        cluster.kill_worker(writing[0])
        sender.join()
        stack.wait_for(lambda: running() and _events_applied(database, job) >= len(events), timeout=900,
                       what="every event applied after the lost worker")
        assert _events_applied(database, job) == len(events)
        # Spark ran the lost task again within the query: the job did not have to start it again.
        assert log_path.read_text(errors="replace").count("real-time mode started") == 1
    finally:
        if sender is not None:
            sender.join()
        if driver is not None:
            spark_cluster.kill_group(driver)
        cluster.stop()
    reference = scenarios.ScenarioRun({}, prefix, [topic], "", "", None, None, tmp_path)
    run_for(reference, second_db, stack.unique("g"), tmp_path / "native", engines.native)
    assert checksums(database) == checksums(second_db), differences(database, second_db)


def differences(database, reference):
    """The rows of each table that are in one database only, for a failure's message."""
    raw = pymysql.connect(**stack.MYSQL, conv={})
    try:
        got, want = scenarios.table_state(raw, database), scenarios.table_state(raw, reference)
    finally:
        raw.close()
    out = []
    for table in sorted(set(got) | set(want)):
        if table.startswith("_m2m"):
            continue
        (columns, rows), (ref_columns, ref_rows) = got.get(table, ([], ())), want.get(table, ([], ()))
        out.append(f"{table}: {columns} / reference {ref_columns}")
        out += [f"  only in the job's: {r}" for r in sorted(set(rows) - set(ref_rows), key=repr)[:10]]
        out += [f"  only in the reference: {r}" for r in sorted(set(ref_rows) - set(rows), key=repr)[:10]]
    return "\n".join(out)
