"""The Spark engine on a real Spark standalone cluster on loopback: a master and two workers from
the pyspark distribution, the job spark-submitted as the README's "Spark" section says (the package
as a zip, the m2m_core extension with --files), one worker killed while the job streams. The
executors' tasks apply the records (the driver holds none), so the tasks of the lost worker run
again elsewhere and the MySQL tables must equal the native engine's, exactly."""
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pyspark
import pytest

import engines
import scenarios
import stack
from test_spark_conformance import _events_applied, checksums, produce, run_for, second_db, workload  # noqa: F401

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def spark_class(tmp_path, name, *args):
    log = open(tmp_path / f"{name}.log", "w")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(tmp_path),
           "SPARK_WORKER_DIR": str(tmp_path / f"{name}-work")}
    return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.spark
@pytest.mark.timeout(1200)
def test_a_standalone_cluster_applies_exactly_through_a_lost_worker(mysql_db, second_db, tmp_path):
    events = workload(600, seed=23)
    prefix, topic = produce(events, partitions=4)
    reference = scenarios.ScenarioRun({}, prefix, [topic], "", "", None, None, tmp_path)
    run_for(reference, second_db, stack.unique("g"), tmp_path / "native", engines.native)

    port = stack.free_port()
    master_url = f"spark://{stack.HOST}:{port}"
    processes = [spark_class(tmp_path, "master", "org.apache.spark.deploy.master.Master", "--host", stack.HOST,
                             "--port", str(port), "--webui-port", "0")]
    try:
        for i in (1, 2):
            processes.append(spark_class(tmp_path, f"worker{i}", "org.apache.spark.deploy.worker.Worker", master_url,
                                         "--host", stack.HOST, "--cores", "1", "--memory", "1g", "--webui-port", "0",
                                         "--work-dir", str(tmp_path / f"worker{i}-work")))
        package = tmp_path / "m2m_spark.zip"
        with zipfile.ZipFile(package, "w") as z:
            for f in (stack.ROOT / "spark" / "m2m_spark").glob("*.py"):
                z.write(f, f"m2m_spark/{f.name}")
        core = next((stack.ROOT / os.environ.get("M2M_BUILD", "build") / "python").glob("m2m_core*.so"))
        jars = ",".join(str(j) for j in sorted((stack.STATE / "jars" / "spark").glob("*.jar")))
        database, job = mysql_db[0], stack.unique("job")
        # The driver finds no extension of its own (M2M_BUILD): the executors get it from --files.
        env = {k: v for k, v in os.environ.items() if k != "M2M_SPARK_MASTER"}
        env.update(SPARK_HOME=str(SPARK_HOME), PYSPARK_PYTHON=sys.executable, M2M_BUILD="no-such-build",
                   M2M_MYSQL_PASSWORD=stack.MYSQL["password"], PYTHONPATH="")
        submit = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url, "--jars", jars,
                  "--py-files", str(package), "--files", str(core), "--conf", "spark.executor.memory=1g",
                  str(stack.ROOT / "spark" / "submit.py"), "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                  "--topics", topic, "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
                  "--mysql-user", stack.MYSQL["user"], "--mysql-database", database, "--job-name", job,
                  "--checkpoint", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger", "60",
                  "--max-batch-events", "10", "--trigger-interval", "0 seconds"]
        log = open(tmp_path / "driver.log", "w")
        driver = subprocess.Popen(submit, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(driver)
        stack.wait_for(lambda: _events_applied(database, job) >= 150 or driver.poll() is not None, timeout=600,
                       what="a quarter of the events applied on the cluster")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-4000:]
        stop(processes[1])  # worker 1 and its executor, mid-stream
        stack.wait_for(lambda: _events_applied(database, job) >= len(events) or driver.poll() is not None,
                       timeout=600, what="every event applied by the remaining worker")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-4000:]
        assert _events_applied(database, job) == len(events)
        assert checksums(database) == checksums(second_db)
    finally:
        for p in reversed(processes):
            stop(p)
