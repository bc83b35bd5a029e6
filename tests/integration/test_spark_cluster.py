"""The Spark engine on a real Spark standalone cluster on loopback: a master and two workers from
the pyspark distribution, the job spark-submitted as the README's "Spark" section says (the package
as a zip, the m2m_core extension with --files), one worker killed while the job streams. The
executors' tasks apply the records (the driver holds none), so the tasks of the lost worker run
again elsewhere and the MySQL tables must equal the native engine's, exactly."""
import os
import subprocess

import pytest

import engines
import scenarios
import spark_cluster
import stack
from test_spark_conformance import _events_applied, checksums, produce, run_for, second_db, workload  # noqa: F401


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
             database, "--job-name", job, "--checkpoint", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger",
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
