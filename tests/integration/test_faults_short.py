"""The fault campaign's short form (bench/faults.py; `make faults` runs it with 20 cycles): one
failure of each kind while a writer keeps a steady workload flowing through capture, Kafka and two
apply members: kill -9 of capture, of an apply member, of the Kafka broker and of MariaDB, a stop
and restart of the MongoDB stand-in, SIGSTOP of an apply member past its session timeout. It runs on
a stack of its own (stack/ctl.sh with a state folder of its own and free ports), because it kills
servers the other tests use. Every failure must be recovered from (the end-to-end lag back under
3 s), and at the end verify is clean and MySQL and Kafka match the writer's log of acknowledged
writes: nothing lost, nothing twice, nothing quarantined."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import stack


@pytest.mark.faults
def test_one_failure_of_each_kind_loses_and_repeats_nothing():
    # Short paths: MariaDB's socket lives in the state folder and a socket path has at most 107 bytes.
    work = Path(tempfile.mkdtemp(prefix="m2m-faults-"))
    try:
        done = subprocess.run([sys.executable, str(stack.ROOT / "bench" / "faults.py"), "--cycles", "1",
                               "--state", str(work / "stack"), "--results", str(work / "results"),
                               "--baseline-s", "5", "--recover-timeout", "240"],
                              capture_output=True, text=True, timeout=840, env=dict(os.environ))
        found = sorted((work / "results").glob("faults-*/faults.json"))
        assert found, f"no result written:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        run = json.loads(found[-1].read_text())
        report = (found[-1].parent / "faults.md").read_text()
        assert done.returncode == 0, f"{report}\n{done.stderr[-3000:]}"
        assert set(run["summary"]) == {"capture-kill", "apply-kill", "kafka-kill", "mariadb-kill", "mongo-restart",
                                       "apply-stop"}
        assert all(f["survived"] == 1 for f in run["summary"].values()), report
        outcome = run["outcome"]
        assert outcome["verify"]["clean"], outcome["verify"]["output"]
        assert (outcome["lost"], outcome["duplicated"], outcome["quarantined"]) == (0, 0, 0), report
        assert outcome["kafka"]["events"] == outcome["writes"]["committed"] == outcome["applied_events"], report
        for collection, m in outcome["mysql"].items():
            assert (m["rows"], m["seq_sum_mysql"]) == (m["documents"], m["seq_sum_writer"]), (collection, m)
    finally:
        # faults.py stops its servers on the way out; a test that timed out leaves them to this.
        if (work / "stack" / "run").exists():
            subprocess.run(["bash", str(stack.ROOT / "stack" / "ctl.sh"), "down"], capture_output=True, timeout=600,
                           env={**os.environ, "M2M_STATE": str(work / "stack")})
        shutil.rmtree(work, ignore_errors=True)
