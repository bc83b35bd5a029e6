"""The Spark engine's wheel (make wheel, docs/spark.md "On a cluster") installed into a fresh venv, as on
a cluster node: no checkout, no system site-packages, LD_LIBRARY_PATH empty. Its m2m_core must load
with the native libraries bundled in the wheel and apply real records into the stack's MariaDB, as
the executors' tasks do (m2m_spark/core.py), without Spark."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

import scenarios
import stack

pytestmark = pytest.mark.wheel

# What the wheel is built from: a wheel in dist/ newer than all of it is reused.
SOURCES = ("CMakeLists.txt", "pyproject.toml", "core", "apply", "spark")
# Libraries every manylinux system has (auditwheel's policy), which the wheel may take from the system.
SYSTEM_LIBRARIES = ("linux-vdso.so", "ld-linux-x86-64.so", "libc.so", "libm.so", "libstdc++.so", "libgcc_s.so",
                    "libz.so", "libresolv.so", "libpthread.so", "libdl.so", "librt.so")

# Run by the venv's Python: the executors' use of the core (core.py), on records from stdin.
APPLY = r"""
import base64, json, sys
import m2m_core
import m2m_spark.core  # the package's own imports (pyarrow) resolve from its declared dependencies

job = json.load(sys.stdin)
columns = [job["topics"], job["partitions"], job["offsets"], [base64.b64decode(k) for k in job["keys"]],
           [base64.b64decode(v) for v in job["values"]], job["timestamps"]]
applier = m2m_core.Applier(mysql=job["mysql"], group=job["group"])
outcomes = []
release = []
for _ in range(4):  # each new table's first event is a barrier the driver releases: one round each
    task = m2m_core.RangeRun(applier, release, 1000, 64 << 20, 60)
    task.feed(*columns)
    outcomes.append(task.finish())
    if outcomes[-1]["held"] is None:
        break
    release = [outcomes[-1]["held"]]
print(json.dumps({"core": m2m_core.__file__, "package": m2m_spark.core.__file__, "outcomes": outcomes}))
"""


def newest_source_mtime():
    paths = [stack.ROOT / name for name in SOURCES]
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
             and "__pycache__" not in p.parts]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def wheel():
    """dist/'s wheel for this Python, built by `make wheel` unless one newer than its sources is there."""
    pattern = f"mongo2mysql_spark-*-cp{sys.version_info.major}{sys.version_info.minor}-*manylinux*_x86_64.whl"
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
    folder = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-c", str(stack.ROOT / "stack" / "requirements.txt"), str(wheel)], check=True, timeout=600)
    return folder


def clean_env():
    """A node's environment: nothing of the checkout's or the build's on a search path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "M2M_BUILD", "M2M_STATE")}
    env["LD_LIBRARY_PATH"] = ""
    return env


def site_packages(venv):
    return Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())


def test_the_extension_links_only_its_bundled_libraries_and_the_system_base(venv):
    site = site_packages(venv)
    bundled = site / "mongo2mysql_spark.libs"
    [extension] = site.glob("m2m_core*.so")
    plugins = sorted((site / "m2m_core.plugins").glob("*.so"))
    assert {p.name for p in plugins} >= {"caching_sha2_password.so", "sha256_password.so", "client_ed25519.so"}
    for elf in [extension] + plugins:
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
    listing = subprocess.run(["ldd", str(extension)], env=clean_env(), capture_output=True, text=True).stdout
    for library in ("libmongoc-1", "libbson-1", "libmariadb", "libyaml-cpp", "libspdlog", "libfmt"):
        assert any(line.strip().startswith(library) and str(bundled) in line for line in listing.splitlines()), (
            library, listing)


# Run by the venv's Python: libmariadb (the wheel's, as m2m_core loaded it) loads MySQL 8's default
# authentication plugin, as it does when a server asks for it.
LOAD_PLUGIN = r"""
import ctypes, json
import m2m_core

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
    plugins = str(site_packages(venv) / "m2m_core.plugins")
    assert out["loaded"], out["error"]
    assert out["plugin_dir"] == plugins and out["mapped"] == [plugins + "/caching_sha2_password.so"]


def test_the_installed_wheel_applies_records_exactly_once(venv, mysql_db):
    database, group, prefix = mysql_db[0], stack.unique("g"), stack.unique("x")
    events = [{"op": "insert", "collection": "items", "document": f'{{"_id": {i}, "n": {i * 10}}}'} for i in range(1, 6)]
    events += [{"op": "update", "collection": "items", "key": '{"_id": 2}', "updated": '{"n": 99}'},
               {"op": "delete", "collection": "items", "key": '{"_id": 5}'}]
    encoded = [scenarios.encode(e, prefix, i + 1) for i, e in enumerate(events)]
    job = {"mysql": {**stack.MYSQL, "database": database}, "group": group,
           "topics": [t for t, _, _ in encoded], "partitions": [0] * len(encoded), "offsets": list(range(len(encoded))),
           "keys": [base64.b64encode(k).decode() for _, k, _ in encoded],
           "values": [base64.b64encode(v).decode() for _, _, v in encoded],
           "timestamps": [1_700_000_000_000_000] * len(encoded)}

    def run():
        # The venv's folder as working directory: the checkout's spark/ is on no path.
        done = subprocess.run([str(venv / "bin" / "python"), "-c", APPLY], input=json.dumps(job), cwd=venv,
                              env=clean_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    first = run()
    site = str(site_packages(venv))
    assert first["core"].startswith(site) and first["package"].startswith(site)
    assert first["outcomes"][0]["held"] is not None  # the new table's barrier, released in the next round
    assert first["outcomes"][-1]["held"] is None and sum(o["records"] for o in first["outcomes"]) == len(events)
    assert query(database, "SELECT _id, n FROM items ORDER BY _id") == ((1, 10), (2, 99), (3, 30), (4, 40))
    assert query(database, f"SELECT next_offset, applied_events FROM _m2m_offsets WHERE group_id = '{group}'") == (
        (len(events), len(events)),)
    # A task retried on another worker: its Applier finds the offsets in MySQL and applies nothing twice.
    again = run()["outcomes"]
    assert len(again) == 1 and again[0]["skipped"] == len(events) and again[0]["held"] is None
    assert query(database, f"SELECT next_offset, applied_events FROM _m2m_offsets WHERE group_id = '{group}'") == (
        (len(events), len(events)),)


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


def test_the_job_finds_the_installed_extension(venv):
    """session.py and job.py's "not built" check from the installed package: no checkout paths, the
    extension found by import. PySpark (an optional extra the venv lacks) from the tests' Python."""
    probe = ("import importlib.util, sys; sys.path.insert(0, sys.argv[1]); from m2m_spark import session; "
             "print(session.__file__, session.CHECKOUT, session.extension_path(), session.executor_python_path(), "
             "importlib.util.find_spec('m2m_core').origin)")
    site = str(site_packages(venv))
    out = subprocess.run([sys.executable, "-c", probe, site], cwd=venv, env=clean_env(), capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0].startswith(site) and out[1:4] == ["None", "None", "."] and out[4].startswith(site)


def query(database, sql):
    conn = pymysql.connect(**stack.MYSQL, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()
