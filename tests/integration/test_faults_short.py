"""The fault campaign's short form (bench/faults.py; `make faults` runs it with 20 cycles): one
failure of each kind while a writer keeps a steady workload flowing through capture, Kafka and two
apply members: kill -9 of capture, of an apply member, of the Kafka broker and of MariaDB, a stop
and restart of the MongoDB stand-in, SIGSTOP of an apply member past its session timeout; and with
the Spark job on a standalone cluster instead of the apply members, kill -9 of its driver and of an
executor. Each runs on a stack of its own (stack/ctl.sh with a state folder of its own and free
ports), because it kills servers the other tests use. Every failure must be recovered from (the
end-to-end lag back to what it was before the first), and at the end verify is clean and MySQL and
Kafka match the writer's log of acknowledged writes: nothing lost, nothing twice, nothing quarantined."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import stack


def campaign(*args, timeout=840):
    """bench/faults.py --cycles 1 with `args` on a stack of its own; returns (its faults.json, its
    table) after asserting that it passed: every failure recovered from, verify clean, MySQL and
    Kafka equal to the writer's log, apply's count equal to the events, nothing quarantined."""
    # Short paths: MariaDB's socket lives in the state folder and a socket path has at most 107 bytes.
    work = Path(tempfile.mkdtemp(prefix="m2m-faults-"))
    try:
        proc = subprocess.Popen([sys.executable, str(stack.ROOT / "bench" / "faults.py"), "--cycles", "1",
                                 "--state", str(work / "stack"), "--results", str(work / "results"),
                                 *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # faults.py then stops its daemons, the Spark cluster and its stack
            stdout, stderr = proc.communicate(timeout=600)
            raise AssertionError(f"the campaign ran over {timeout} s:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
        found = sorted((work / "results").glob("faults-*/faults.json"))
        assert found, f"no result written:\n{stdout[-3000:]}\n{stderr[-3000:]}"
        run = json.loads(found[-1].read_text())
        report = (found[-1].parent / "faults.md").read_text()
        assert proc.returncode == 0, f"{report}\n{stderr[-3000:]}"
        assert all(f["survived"] == 1 for f in run["summary"].values()), report
        outcome = run["outcome"]
        assert outcome["verify"]["clean"], outcome["verify"]["output"]
        assert (outcome["lost"], outcome["duplicated"], outcome["quarantined"]) == (0, 0, 0), report
        assert outcome["kafka"]["events"] == outcome["writes"]["committed"] == outcome["applied_events"], report
        for collection, m in outcome["mysql"].items():
            assert (m["rows"], m["seq_sum_mysql"]) == (m["documents"], m["seq_sum_writer"]), (collection, m)
        return run, report
    finally:
        # faults.py stops its servers on the way out; a test that timed out leaves them to this.
        if (work / "stack" / "run").exists():
            subprocess.run(["bash", str(stack.ROOT / "stack" / "ctl.sh"), "down"], capture_output=True, timeout=600,
                           env={**os.environ, "M2M_STATE": str(work / "stack")})
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.faults
def test_one_failure_of_each_kind_loses_and_repeats_nothing():
    run, _ = campaign("--baseline-s", "5", "--recover-timeout", "240")
    assert set(run["summary"]) == {"capture-kill", "apply-kill", "kafka-kill", "mariadb-kill", "mongo-restart",
                                   "apply-stop"}


@pytest.mark.faults
@pytest.mark.spark
@pytest.mark.timeout(1800)
def test_the_spark_job_loses_and_repeats_nothing_through_its_driver_and_an_executor_killed():
    """The Spark engine's own failures on a standalone cluster of two workers (the other kinds are
    the native run's above, and `make faults FAULT_ENGINE=spark` has them all)."""
    run, report = campaign("--engine", "spark", "--kinds", "spark-driver-kill,spark-executor-kill",
                           "--baseline-s", "30", timeout=1740)
    assert run["engine"] == "spark" and "engine spark" in report
    assert set(run["summary"]) == {"spark-driver-kill", "spark-executor-kill"}
