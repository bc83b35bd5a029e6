"""The job's session under spark-submit: the master spark-submit was given is the one used."""
import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

import stack

SPARK_HOME = Path(pyspark.__file__).resolve().parent

PRINT_MASTER = """
from m2m_spark.session import build_session
print("MASTER=" + build_session("mongo2mysql-submit-test").sparkContext.master)
"""


@pytest.mark.spark
def test_spark_submit_master_is_kept(tmp_path):
    script = tmp_path / "print_master.py"
    script.write_text(PRINT_MASTER)
    env = {k: v for k, v in os.environ.items() if k != "M2M_SPARK_MASTER"}
    env.update(PYTHONPATH=str(stack.ROOT / "spark"), SPARK_HOME=str(SPARK_HOME), PYSPARK_PYTHON=sys.executable)
    result = subprocess.run([str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[1]", str(script)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MASTER=local[1]" in result.stdout.splitlines()
