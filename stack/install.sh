#!/usr/bin/env bash
# Installs everything the project needs, from package registries only, pinned and idempotent:
#   apt   toolchain, C/C++ libraries, MariaDB server
#   mvn   Apache Kafka, the MongoDB stand-in, Spark's Kafka connector  -> $M2M_STATE/jars
#   pip   pyspark, pytest, drivers                                     -> $M2M_VENV
# A second run checks stamps and returns in about a second.
# Arguments name extra poms under stack/maven to fetch as well, e.g. `install.sh debezium` (make bench).
set -euo pipefail
source "$(dirname "$0")/env.sh"

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libmongoc-dev libbson-dev librdkafka-dev libmariadb-dev libssl-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev
  mariadb-server mariadb-client openjdk-17-jdk-headless maven python3-venv python3-dev iproute2
  # make fuzz (clang's libFuzzer). The fuzzer and sanitizer runtimes are in libclang-rt-14-dev, only a
  # Recommends of clang-14, which --no-install-recommends skips; 14 is Debian 12's clang.
  clang libclang-rt-14-dev
  # tests/deploy: the Compose file checked with Debian's docker-compose (1.29; no Docker engine), the
  # systemd units with systemd-analyze.
  docker-compose systemd
  # The /metrics endpoint and histograms (prometheus-cpp); promtool (in prometheus) checks the alert rules.
  prometheus-cpp-dev prometheus
  # tests/integration/test_status_page.py loads the status page in headless Chromium (selenium drives
  # it through chromedriver); civetweb, the page's HTTP server, comes with prometheus-cpp-dev.
  chromium chromium-driver libcivetweb-dev
)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "apt: installing ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian's package may start a system MariaDB on port 3306; the stack runs its own.
  $sudo service mariadb stop >/dev/null 2>&1 || true
  # Likewise a Prometheus server from the prometheus package; the tests need only its promtool.
  $sudo service prometheus stop >/dev/null 2>&1 || true
}

# Copies a pom's runtime dependencies into $M2M_JARS/<name>, unless the pom is unchanged since.
install_jars() {
  local name=$1 pom_dir=$M2M_ROOT/stack/maven/$1 out=$M2M_JARS/$1
  local stamp; stamp=$(sha256sum "$pom_dir/pom.xml" | cut -c1-16)
  [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && return
  say "mvn: fetching $name jars"
  rm -rf "$out"
  local log=$M2M_LOGS/mvn-$name.log
  mvn -B -Dstyle.color=never -s "$M2M_ROOT/stack/maven/settings.xml" -Dmaven.repo.local="$M2M_MAVEN_REPO" \
    -f "$pom_dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out" \
    > "$log" 2>&1 || { tail -n 30 "$log" >&2; die "mvn could not fetch the $name jars; full log: $log"; }
  echo "$stamp" > "$out/.stamp"
}

install_mongo_launcher() {
  local src=$M2M_ROOT/stack/mongo-launcher out=$M2M_JARS/mongo-launcher
  local stamp; stamp=$(cat "$src"/*.java "$M2M_JARS/mongo/.stamp" | sha256sum | cut -c1-16)
  [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && return
  rm -rf "$out" && mkdir -p "$out"
  javac -d "$out" -cp "$M2M_JARS/mongo/*" "$src"/*.java > "$M2M_LOGS/javac-mongo-launcher.log" 2>&1 \
    || { cat "$M2M_LOGS/javac-mongo-launcher.log" >&2; die "compiling the MongoDB stand-in launcher failed"; }
  echo "$stamp" > "$out/.stamp"
}

install_venv() {
  local req=$M2M_ROOT/stack/requirements.txt
  local stamp; stamp=$(sha256sum "$req" | cut -c1-16)
  [ -f "$M2M_VENV/.stamp" ] && [ "$(cat "$M2M_VENV/.stamp")" = "$stamp" ] && return
  say "pip: installing $(grep -c '==' "$req") pinned packages into $M2M_VENV"
  [ -x "$M2M_VENV/bin/python" ] || python3 -m venv "$M2M_VENV"
  "$M2M_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$stamp" > "$M2M_VENV/.stamp"
}

# Only the connector jars pyspark lacks stay (stack/prune-spark-jars.sh says why).
prune_spark_jars() {
  local pyjars
  pyjars=$("$M2M_VENV/bin/python" -c 'import pyspark,os;print(os.path.join(os.path.dirname(pyspark.__file__),"jars"))')
  bash "$M2M_ROOT/stack/prune-spark-jars.sh" "$M2M_JARS/spark" "$pyjars"
}

mkdir -p "$M2M_STATE" "$M2M_JARS" "$M2M_LOGS"
install_apt
install_jars kafka
install_jars mongo
install_mongo_launcher
install_venv
install_jars spark
# install_jars starts from an empty folder when the pom changed, so a missing mark means unpruned.
[ -f "$M2M_JARS/spark/.pruned" ] || { prune_spark_jars; touch "$M2M_JARS/spark/.pruned"; }
for extra in "$@"; do install_jars "$extra"; done
