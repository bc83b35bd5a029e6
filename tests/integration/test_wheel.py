"""The Spark engine's wheel (make wheel, docs/spark.md "On a cluster") installed into a fresh venv, as on
a cluster node: no checkout, no system site-packages, LD_LIBRARY_PATH empty. Its libm2m_jni.so must
need nothing beyond the system's base but what the wheel bundles, and the job, installed with its
`spark` extra, must apply records in micro-batches and in Real-time Mode with the wheel's jar and
library."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

import spark_cluster
import stack
from test_spark_robust import Stream, insert

pytestmark = pytest.mark.wheel

# What the wheel is built from: a wheel in dist/ newer than all of it is reused.
SOURCES = ("CMakeLists.txt", "pyproject.toml", "core", "apply", "spark")
# Libraries every manylinux system has (auditwheel's policy), which the wheel may take from the system.
SYSTEM_LIBRARIES = ("linux-vdso.so", "ld-linux-x86-64.so", "libc.so", "libm.so", "libstdc++.so", "libgcc_s.so",
                    "libz.so", "libresolv.so", "libpthread.so", "libdl.so", "librt.so")

def newest_source_mtime():
    paths = [stack.ROOT / name for name in SOURCES]
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
             and "__pycache__" not in p.parts]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def wheel():
    """dist/'s wheel for this Python, built by `make wheel` unless one newer than its sources is there."""
    pattern = "mongo2mysql_spark-*-py3-none-manylinux*_x86_64.whl"
    found = sorted((stack.ROOT / "dist").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found or found[-1].stat().st_mtime < newest_source_mtime():
        # The wheel is built for the Makefile's Python (M2M_VENV), the one running these tests.
        env = {**os.environ, "M2M_VENV": str(Path(sys.executable).parent.parent)}
        subprocess.run(["make", "-s", "wheel"], cwd=stack.ROOT, env=env, check=True, timeout=1800)
        found = sorted((stack.ROOT / "dist").glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv (no system site-packages) with the wheel and what its metadata requires, at the
    versions stack/requirements.txt pins where it pins them."""
    return make_venv(wheel, tmp_path_factory)


@pytest.fixture(scope="module")
def spark_venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel and its `spark` extra (pyspark, pandas): a node that runs the job
    from the wheel alone."""
    return make_venv(wheel, tmp_path_factory, "[spark]")


def make_venv(wheel, tmp_path_factory, extra=""):
    folder = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-c", str(stack.ROOT / "stack" / "requirements.txt"), f"{wheel}{extra}"], check=True, timeout=1200)
    return folder


def clean_env():
    """A node's environment: nothing of the checkout's or the build's on a search path."""
    # PYSPARK_PYTHON too: a Spark session an earlier test started in this process set it to the
    # stack's Python, which has no wheel installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "M2M_BUILD", "M2M_STATE", "PYSPARK_PYTHON")}
    env["LD_LIBRARY_PATH"] = ""
    return env


def site_packages(venv):
    return Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())


def test_the_core_links_only_its_bundled_libraries_and_the_system_base(venv):
    site = site_packages(venv)
    bundled = site / "mongo2mysql_spark.libs"
    assert not list(site.glob("*.so"))  # no Python extension: the executors' JVMs load the core
    plugins = sorted((site / "m2m_spark" / "jvm" / "mariadb-plugins").glob("*.so"))
    assert {p.name for p in plugins} >= {"caching_sha2_password.so", "sha256_password.so", "client_ed25519.so"}
    jni = site / "m2m_spark" / "jvm" / "libm2m_jni.so"  # the host of the core in the executors' JVMs
    for elf in [jni] + plugins:
        listing = subprocess.run(["ldd", str(elf)], env=clean_env(), capture_output=True, text=True,
                                 check=True).stdout
        foreign = []
        for line in listing.splitlines():
            name, _, where = line.strip().partition(" => ")
            name = name.split(" (")[0]  # the loader's line is its path and address
            path = os.path.normpath(where.split(" (")[0]) if where else name
            if "not found" in line or not (path.startswith(str(bundled)) or Path(name).name.startswith(SYSTEM_LIBRARIES)):
                foreign.append(line.strip())
        assert not foreign, f"{elf.name} needs libraries outside the wheel:\n" + "\n".join(foreign)
    # The libraries the issue names come from the wheel, not from the system's packages.
    listing = subprocess.run(["ldd", str(jni)], env=clean_env(), capture_output=True, text=True).stdout
    for library in ("libmongoc-1", "libbson-1", "libmariadb", "libyaml-cpp", "libspdlog", "libfmt"):
        assert any(line.strip().startswith(library) and os.path.normpath(line.split(" => ")[1]).startswith(
            str(bundled)) for line in listing.splitlines()), (library, listing)


# Run by the venv's Python: libmariadb (the wheel's, as libm2m_jni.so loaded it) loads MySQL 8's default
# authentication plugin, as it does when a server asks for it. The library is loaded as a JVM loads it
# (dlopen, then JNI_OnLoad, which ignores its arguments).
LOAD_PLUGIN = r"""
import ctypes, json, pathlib
import m2m_spark
ctypes.CDLL(str(pathlib.Path(m2m_spark.__file__).parent / "jvm" / "libm2m_jni.so")).JNI_OnLoad(None, None)

maps = open("/proc/self/maps").read().splitlines()
lib = ctypes.CDLL(next(line.split()[-1] for line in maps if "libmariadb" in line))
lib.mysql_init.restype, lib.mysql_init.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
lib.mysql_load_plugin.restype = ctypes.c_void_p
lib.mysql_load_plugin.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
lib.mysql_error.restype, lib.mysql_error.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
mysql = lib.mysql_init(None)
loaded = lib.mysql_load_plugin(mysql, b"caching_sha2_password", -1, 0)
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
print(json.dumps({"loaded": bool(loaded), "error": lib.mysql_error(mysql).decode(),
                  "plugin_dir": (libc.getenv(b"MARIADB_PLUGIN_DIR") or b"").decode(),
                  "mapped": sorted({line.split()[-1] for line in open("/proc/self/maps") if "caching_sha2" in line})}))
"""


def test_mysql_authentication_plugins_come_from_the_wheel(venv):
    done = subprocess.run([str(venv / "bin" / "python"), "-c", LOAD_PLUGIN], cwd=venv, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    plugins = str(site_packages(venv) / "m2m_spark" / "jvm" / "mariadb-plugins")
    assert out["loaded"], out["error"]
    assert out["plugin_dir"] == plugins and out["mapped"] == [plugins + "/caching_sha2_password.so"]


def test_the_wheel_requires_what_the_package_imports(venv):
    """Every module the installed m2m_spark imports is there from the wheel's requirements, but for
    pyspark with its py4j (the `spark` extra) and the standard library."""
    probe = ("import ast, importlib.util, pathlib, sys, m2m_spark; "
             "names = {(a.name if isinstance(n, ast.Import) else n.module).split('.')[0] "
             "for f in pathlib.Path(m2m_spark.__file__).parent.glob('*.py') for n in ast.walk(ast.parse(f.read_text())) "
             "if isinstance(n, (ast.Import, ast.ImportFrom)) and not getattr(n, 'level', 0) "
             "for a in (n.names if isinstance(n, ast.Import) else n.names[:1])}; "
             "print(sorted(n for n in names if n not in sys.stdlib_module_names and importlib.util.find_spec(n) is None))")
    missing = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=venv, env=clean_env(),
                             capture_output=True, text=True, check=True).stdout.strip()
    assert missing == "['py4j', 'pyspark']"  # py4j: pyspark's own dependency


def test_the_job_finds_the_installed_jar_and_library(venv):
    """session.py and job.py's "not built" check from the installed package: no checkout paths, the
    job's jar and libm2m_jni.so in the package. PySpark (an optional extra the venv lacks) from the
    tests' Python."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from m2m_spark import session; "
             "print(session.__file__, session.CHECKOUT, *session.jvm_build())")
    site = str(site_packages(venv))
    out = subprocess.run([sys.executable, "-c", probe, site], cwd=venv, env=clean_env(), capture_output=True,
                         text=True, check=True).stdout.split()
    jvm = str(site_packages(venv) / "m2m_spark" / "jvm")
    assert out[0].startswith(site) and out[1:] == ["None", f"{jvm}/m2m-spark.jar", f"{jvm}/libm2m_jni.so"]


def job_args(database, job, checkpoint, topics):
    """The job's arguments against the stack, in Real-time Mode."""
    return ["--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topics", topics, "--mysql-host", stack.MYSQL["host"],
            "--mysql-port", str(stack.MYSQL["port"]), "--mysql-user", stack.MYSQL["user"], "--mysql-database", database,
            "--group", job, "--checkpoint", str(checkpoint), "--real-time", "--real-time-epoch", "10 seconds"]


def descendants(pid):
    """Pids of a process's descendants."""
    children = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                children.setdefault(int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        found = children.get(todo.pop(), [])
        out += found
        todo += found
    return out


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def mapped_by(pids, name):
    """The files named `name` mapped by the processes."""
    found = set()
    for pid in pids:
        try:
            found |= {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if line.endswith(name)}
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


@pytest.mark.spark
@pytest.mark.timeout(1800)
def test_the_installed_job_runs_real_time_mode_with_the_wheels_writer(spark_venv, mysql_db, tmp_path):
    """`python -m m2m_spark.job --real-time` from the venv with the wheel and its `spark` extra, outside
    the checkout (local mode): the job finds the writer's jar and libm2m_jni.so in the installed package,
    Spark's JVM loads that library, and records sent while Real-time Mode runs reach MySQL exactly once."""
    database, job = mysql_db[0], stack.unique("rt")
    stream = Stream(tmp_path)
    stream.send([insert("a", {"_id": 1, "qty": 1}), insert("a", {"_id": 2, "qty": 2})])
    env = {**clean_env(), "M2M_SPARK_JARS": str(stack.STATE / "jars" / "spark"),
           "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}
    log_path = tmp_path / "job.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(spark_venv / "bin" / "python"), "-m", "m2m_spark.job", "--master", "local[2]",
                                 *job_args(database, job, tmp_path / "checkpoint", stream.topics[0])],
                                cwd=spark_venv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def running():
            assert proc.poll() is None, log_path.read_text(errors="replace")[-4000:]
            return True

        # The catch-up in micro-batches applies what the topic holds (the new table's barrier), then
        # Real-time Mode starts.
        stack.wait_for(lambda: running() and "real-time mode started" in log_path.read_text(errors="replace"),
                       timeout=900, what="Real-time Mode started")
        stream.send([insert("a", {"_id": 3, "qty": 3}),
                     {"op": "update", "collection": "a", "key": '{"_id": 1}', "updated": '{"qty": 11}'},
                     {"op": "delete", "collection": "a", "key": '{"_id": 2}'}])
        stack.wait_for(lambda: running() and query(database, "SELECT _id, qty FROM a ORDER BY _id") == ((1, 11), (3, 3)),
                       timeout=300, what="the records sent in Real-time Mode applied")
        assert query(database, f"SELECT next_offset, applied_events FROM _m2m_offsets WHERE group_id = '{job}'") == (
            (5, 5),)
        # Applied by the first Real-time Mode query, not by a catch-up.
        assert log_path.read_text(errors="replace").count("real-time mode started") == 1
        # Local mode: the executor is Spark's JVM, the job's child, started with the wheel's jar, and it
        # loaded the wheel's library.
        installed = site_packages(spark_venv) / "m2m_spark" / "jvm"
        jvms = [p for p in descendants(proc.pid) if b"org.apache.spark.deploy.SparkSubmit" in cmdline(p)]
        assert len(jvms) == 1 and str(installed / "m2m-spark.jar").encode() in cmdline(jvms[0])
        assert mapped_by(jvms, "libm2m_jni.so") == {str(installed / "libm2m_jni.so")}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


@pytest.mark.spark
@pytest.mark.timeout(900)
def test_the_job_under_spark_submit_needs_its_jar_on_jars(spark_venv, mysql_db, tmp_path):
    """A driver that spark-submit started loads classes from --jars only: without the job's jar there,
    the installed job stops before any work, naming the jar (docs/spark.md, "On a cluster")."""
    database = mysql_db[0]
    stream = Stream(tmp_path)
    stream.send([insert("a", {"_id": 1, "qty": 1})])
    script = tmp_path / "submit.py"
    script.write_bytes((stack.ROOT / "spark" / "submit.py").read_bytes())
    jars = ",".join(str(j) for j in sorted((stack.STATE / "jars" / "spark").glob("*.jar")))
    env = {**clean_env(), "SPARK_HOME": str(spark_cluster.SPARK_HOME), "PYSPARK_PYTHON": str(spark_venv / "bin" / "python"),
           "M2M_SPARK_JARS": str(stack.STATE / "jars" / "spark"), "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]}
    done = subprocess.run([str(spark_cluster.SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]", "--jars", jars,
                           str(script), *job_args(database, stack.unique("rt"), tmp_path / "checkpoint", stream.topics[0])],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    jar = str(site_packages(spark_venv) / "m2m_spark" / "jvm" / "m2m-spark.jar")
    # spark-submit passes the job's stderr on to its stdout.
    assert done.returncode == 2 and f"the driver cannot load the job's JVM classes: give their jar to spark-submit, --jars …,{jar}" \
        in done.stdout, done.stdout[-4000:]
    assert query(database, "SHOW TABLES") == ()  # no catch-up ran


def query(database, sql):
    conn = pymysql.connect(**stack.MYSQL, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()
