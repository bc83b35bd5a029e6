"""A Spark standalone cluster on loopback, from the pyspark distribution: a master and workers run
with spark-class as sbin/start-master.sh and start-worker.sh run them, each in a process group of
its own; and the spark-submit command line of the job on it, as the README's "Spark" section gives
it (the package as a zip with --py-files, the C++ core libm2m_jni.so with --files, the job's jar and
the Kafka connector jars with --jars). Shared by the cluster test (tests/integration/test_spark_cluster.py) and the
fault campaign's Spark engine (bench/faults.py)."""
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pyspark

import stack

SPARK_HOME = Path(pyspark.__file__).resolve().parent
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


class Cluster:
    """A master and `workers` workers of `cores` cores and `memory` each, logging into `folder`.
    preexec_fn runs in each child before exec (the fault campaign's die-with-parent)."""

    def __init__(self, folder, workers=2, cores=1, memory="1g", port=None, preexec_fn=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.size, self.cores, self.memory, self.preexec_fn = workers, cores, memory, preexec_fn
        self.url = f"spark://{stack.HOST}:{port or stack.free_port()}"
        self.master = None
        self.workers = []

    def _spark_class(self, name, *args):
        env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(self.folder),
               # Loopback only: Spark would otherwise advertise the machine's first interface address.
               "SPARK_LOCAL_IP": stack.HOST, "SPARK_WORKER_DIR": str(self.folder / f"{name}-work")}
        with open(self.folder / f"{name}.log", "ab") as log:
            return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=self.preexec_fn)

    def start(self):
        port = self.url.rsplit(":", 1)[1]
        self.master = self._spark_class("master", "org.apache.spark.deploy.master.Master", "--host", stack.HOST,
                                        "--port", port, "--webui-port", "0")
        for i in range(1, self.size + 1):
            self.workers.append(self._spark_class(
                f"worker{i}", "org.apache.spark.deploy.worker.Worker", self.url, "--host", stack.HOST, "--cores",
                str(self.cores), "--memory", self.memory, "--webui-port", "0",
                "--work-dir", str(self.folder / f"worker{i}-work")))
        return self

    def executors(self, worker):
        """Pids of the executor JVMs (CoarseGrainedExecutorBackend) the worker (an index into
        `workers`) runs now. spark-class execs the JVM, so a worker's pid is the JVM's, and the
        executors it launches are its children."""
        parent = str(self.workers[worker].pid)
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[1] == parent and stat[0] not in ("Z", "X") and \
                        EXECUTOR_CLASS.encode() in (proc / "cmdline").read_bytes():
                    out.append(int(proc.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
        return sorted(out)

    def kill_worker(self, worker):
        """kill -9 of a worker (and the executors it runs: they are in its process group)."""
        kill_group(self.workers[worker])

    def submit_command(self, folder, build, job_args):
        """spark-submit of spark/submit.py with `job_args` to this cluster: the package zipped into
        `folder`, the C++ core of the build folder `build` shipped to the executors' working
        directories, the job's jar and the shared stack's connector jars; executors as large as a worker."""
        jvm = Path(build) / "jvm"
        jars = ",".join([str(j) for j in sorted((stack.STATE / "jars" / "spark").glob("*.jar"))] + [str(jvm / "m2m-spark.jar")])
        return [str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.url, "--jars", jars,
                "--py-files", str(package(folder)), "--files", str(jvm / "libm2m_jni.so"),
                "--conf", f"spark.executor.memory={self.memory}",
                str(stack.ROOT / "spark" / "submit.py"), *job_args]

    def submit_installed_command(self, folder, job_jar, job_args):
        """spark-submit of the job installed from the wheel into a venv at the same path on every node
        (the driver runs its Python, PYSPARK_PYTHON; the executors load its libm2m_jni.so), as
        docs/spark.md "On a cluster" gives it: no zip, no --files; the job's jar on --jars, for the
        driver's JVM.
        spark/submit.py is copied into `folder`: run from spark/, its folder (first on sys.path) would
        put the checkout's package before the installed one."""
        script = Path(folder) / "submit.py"
        script.write_bytes((stack.ROOT / "spark" / "submit.py").read_bytes())
        jars = [str(j) for j in sorted((stack.STATE / "jars" / "spark").glob("*.jar"))] + [str(job_jar)]
        return [str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.url, "--jars", ",".join(jars),
                "--conf", f"spark.executor.memory={self.memory}", str(script), *job_args]

    def stop(self):
        for proc in [*reversed(self.workers), self.master]:
            if proc is not None:
                kill_group(proc)


def kill_group(proc):
    """kill -9 of a process's group (it leads one, start_new_session), then reaps it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def package(folder):
    """spark/m2m_spark as the zip spark-submit --py-files takes; returns its path."""
    path = Path(folder) / "m2m_spark.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted((stack.ROOT / "spark" / "m2m_spark").glob("*.py")):
            z.write(f, f"m2m_spark/{f.name}")
    return path


def submit_env(base, mysql_password):
    """The driver's environment: `base` without what would bypass the cluster's way of shipping code.
    The driver finds no build of its own (M2M_BUILD names no folder), so the executors get the core
    from --files only; M2M_SPARK_MASTER would override --master. On loopback, as the cluster."""
    env = {k: v for k, v in base.items() if k != "M2M_SPARK_MASTER"}
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP=stack.HOST, PYSPARK_PYTHON=sys.executable,
               M2M_BUILD="no-such-build",
               M2M_SPARK_JARS=str(stack.STATE / "jars" / "spark"), M2M_MYSQL_PASSWORD=mysql_password, PYTHONPATH="")
    return env
