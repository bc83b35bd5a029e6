#!/usr/bin/env bash
# Starts, stops and reports the local stack: MariaDB, Apache Kafka (KRaft) and the MongoDB stand-in,
# all on loopback with their data and logs under $M2M_STATE. Spark runs in local mode inside the job
# that uses it, so "status" only checks that pyspark and the connector jars are installed.
#
#   stack/ctl.sh up|down|status [mariadb|kafka|mongo ...]
#
# "up" on a running server is a no-op; each start waits until the server answers. A port held by a
# process that is not ours is an error naming the port and that process.
set -euo pipefail
source "$(dirname "$0")/env.sh"

ALL=(mariadb kafka mongo)
START_TIMEOUT=${M2M_START_TIMEOUT:-120}

pidfile() { echo "$M2M_STATE/run/$1.pid"; }
port_of() {
  case $1 in mariadb) echo "$M2M_MYSQL_PORT" ;; kafka) echo "$M2M_KAFKA_PORT" ;; mongo) echo "$M2M_MONGO_PORT" ;; esac
}

# Our pid for a component, if that process is alive and still the one we started.
running_pid() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$M2M_STATE" && echo "$pid"
}

port_holder() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true; }

check_port_free() {
  local port=$1 holder
  holder=$(port_holder "$port")
  [ -z "$holder" ] || die "port $port is already in use by $holder; stop that process or set the port's M2M_*_PORT variable"
}

wait_until() {  # wait_until <component> <what> <command...>
  local name=$1 what=$2; shift 2
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! running_pid "$name" >/dev/null; then
      grep -m 1 -E 'Exception|ERROR|error' "$M2M_LOGS/$name.out" >&2 || tail -n 5 "$M2M_LOGS/$name.out" >&2
      die "$what exited while starting$(start_hint "$name"); its output: $M2M_LOGS/$name.out"
    fi
    [ $SECONDS -lt $deadline ] || die "$what did not become healthy within ${START_TIMEOUT}s; see $M2M_LOGS"
    sleep 0.5
  done
}

# What to do about a start that failed in a way we know.
start_hint() {
  if [ "$1" = mongo ] && grep -q 'MVStoreException' "$M2M_LOGS/mongo.out" 2>/dev/null; then
    printf '%s' ": its data file $M2M_STATE/mongo/data.mv is damaged (a stop that did not finish writing it?);" \
      " it holds only local test data: move it aside (mv $M2M_STATE/mongo/data.mv{,.damaged}) and start again"
  fi
}

launch() {  # launch <component> <command...>: detached, output to its log, pid recorded
  local name=$1; shift
  mkdir -p "$M2M_STATE/run" "$M2M_LOGS"
  setsid "$@" > "$M2M_LOGS/$name.out" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

mysql_admin() { mariadb --no-defaults --protocol=socket --socket="$M2M_STATE/mariadb/mysqld.sock" -uroot "$@"; }

# A CA and a server certificate for $M2M_HOST, 127.0.0.1 and localhost, plus a client certificate, under
# $M2M_TLS, so MariaDB serves TLS as production servers do and tests can verify it (`--mysql-ssl-mode
# VERIFY_IDENTITY --mysql-ca $M2M_TLS/ca.pem`). Made once per state folder, in a scratch folder first
# so an interrupted run leaves none or all of them; only for loopback tests (the CA's key lies beside).
make_tls() {
  [ -f "$M2M_TLS/server-cert.pem" ] && return
  mkdir -p "$M2M_STATE" "$M2M_LOGS"
  local tmp; tmp=$(mktemp -d "$M2M_STATE/tls.XXXXXX")
  local san="IP:127.0.0.1,DNS:localhost"
  [ "$M2M_HOST" = 127.0.0.1 ] || san="$san,IP:$M2M_HOST"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mongo2mysql local stack CA" \
      -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    local name
    for name in server client; do
      openssl req -new -newkey rsa:2048 -nodes -subj "/CN=mongo2mysql local stack $name" \
        -keyout "$tmp/$name-key.pem" -out "$tmp/$name.csr"
      printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s\n' "$name"Auth \
        "$([ $name = server ] && echo "subjectAltName=$san")" > "$tmp/$name.ext"
      openssl x509 -req -days 3650 -in "$tmp/$name.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
        -CAcreateserial -extfile "$tmp/$name.ext" -out "$tmp/$name-cert.pem"
    done
  } > "$M2M_LOGS/tls.log" 2>&1 || { rm -rf "$tmp"; die "making the stack's TLS certificates failed; see $M2M_LOGS/tls.log"; }
  rm -f "$tmp"/*.csr "$tmp"/*.ext "$tmp"/*.srl
  chmod 600 "$tmp"/*-key.pem
  rm -rf "$M2M_TLS" && mv "$tmp" "$M2M_TLS"
}

start_mariadb() {
  local dir=$M2M_STATE/mariadb
  make_tls
  if [ ! -d "$dir/data/mysql" ]; then
    mkdir -p "$dir/data" "$M2M_LOGS"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=socket --skip-test-db > "$M2M_LOGS/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed; see $M2M_LOGS/mariadb-install.log"
  fi
  # Its temporary tables live in the state folder: a cleaner of the shared /tmp removed them under
  # running queries ("Error on delete of '/tmp/#sql-temptable-…'", errno 6) and failed apply.
  mkdir -p "$dir/tmp"
  launch mariadb mariadbd --no-defaults --datadir="$dir/data" --user="$(id -un)" --tmpdir="$dir/tmp" \
    --bind-address="$M2M_HOST" --port="$M2M_MYSQL_PORT" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$M2M_LOGS/mariadb.log" \
    --innodb-buffer-pool-size=512M --max-connections=300 --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_bin --max-allowed-packet=256M \
    --ssl-ca="$M2M_TLS/ca.pem" --ssl-cert="$M2M_TLS/server-cert.pem" --ssl-key="$M2M_TLS/server-key.pem"
  wait_until mariadb "MariaDB" mysql_admin -e 'SELECT 1'
  # The pipeline user may create databases: tests make one each, and users may map several.
  mysql_admin <<SQL
CREATE DATABASE IF NOT EXISTS \`$M2M_MYSQL_DATABASE\`;
CREATE USER IF NOT EXISTS '$M2M_MYSQL_USER'@'localhost' IDENTIFIED BY '$M2M_MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$M2M_MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$M2M_MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$M2M_MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO '$M2M_MYSQL_USER'@'127.0.0.1';
SQL
}

kafka_ready() { grep -q 'Kafka Server started' "$M2M_LOGS/kafka.log" && [ -n "$(port_holder "$M2M_KAFKA_PORT")" ]; }

need_jars() { [ -d "$M2M_JARS/$1" ] || die "the $1 jars are not installed; run stack/install.sh (or make up)"; }

start_kafka() {
  need_jars kafka
  local dir=$M2M_STATE/kafka conf=$M2M_STATE/kafka/server.properties
  mkdir -p "$dir"
  cat > "$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$M2M_HOST:$M2M_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$M2M_HOST:$M2M_KAFKA_PORT,CONTROLLER://$M2M_HOST:$M2M_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$M2M_HOST:$M2M_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Topics are created on purpose (capture makes its topics compacted or partitioned as configured);
# a metadata request for a missing topic must not create it with the broker's defaults.
auto.create.topics.enable=false
# Tests create and delete many topics; keep the broker's per-topic footprint small.
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
PROPS
  local cp="$M2M_JARS/kafka/*"
  local jvm=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$M2M_LOGS" -Dlog4j.configuration="file:$M2M_ROOT/stack/kafka-log4j.properties" -cp "$cp")
  if [ ! -f "$dir/data/meta.properties" ]; then
    # One fixed cluster id per state folder: formatting is done once, like a real deployment.
    "${jvm[@]}" kafka.tools.StorageTool format -t "$(cat /proc/sys/kernel/random/uuid | python3 -c 'import sys,uuid,base64;print(base64.urlsafe_b64encode(uuid.UUID(sys.stdin.read().strip()).bytes).decode().rstrip("="))')" \
      -c "$conf" > "$M2M_LOGS/kafka-format.log" 2>&1 || die "formatting Kafka storage failed; see $M2M_LOGS/kafka-format.log"
  fi
  rm -f "$M2M_LOGS/kafka.log"
  launch kafka "${jvm[@]}" kafka.Kafka "$conf"
  wait_until kafka "Kafka" kafka_ready
}

mongo_ready() { grep -q 'listening on' "$M2M_LOGS/mongo.out" && [ -n "$(port_holder "$M2M_MONGO_PORT")" ]; }

start_mongo() {
  need_jars mongo
  mkdir -p "$M2M_STATE/mongo"
  launch mongo java -Xms128m -Xmx2g -cp "$M2M_JARS/mongo/*:$M2M_JARS/mongo-launcher" MongoStandIn \
    "$M2M_HOST" "$M2M_MONGO_PORT" "$M2M_STATE/mongo/data.mv"
  wait_until mongo "MongoDB stand-in" mongo_ready
}

up() {
  local name=$1
  if running_pid "$name" >/dev/null; then
    if [ "$name" = mariadb ] && [ ! -f "$M2M_TLS/server-cert.pem" ]; then
      say "mariadb: already running, without TLS (started before the stack served it); 'make down && make up' restarts it with TLS"
    else
      say "$name: already running"
    fi
    return
  fi
  check_port_free "$(port_of "$name")"
  [ "$name" != kafka ] || check_port_free "$M2M_KAFKA_CONTROLLER_PORT"
  say "$name: starting on $M2M_HOST:$(port_of "$name")"
  "start_$name"
  say "$name: up (pid $(cat "$(pidfile "$name")"))"
}

down() {
  local name=$1 pid
  if ! pid=$(running_pid "$name"); then say "$name: not running"; rm -f "$(pidfile "$name")"; return; fi
  kill -TERM "$pid"
  # A server killed while it writes its files on the way out may leave them damaged: wait long.
  local deadline=$((SECONDS + 180))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then say "$name: did not stop in 180s, killing"; kill -KILL "$pid"; fi
    sleep 0.2
  done
  rm -f "$(pidfile "$name")"
  say "$name: stopped"
}

status() {
  local name=$1 pid
  if pid=$(running_pid "$name"); then
    printf '%-8s up    pid %-7s %s:%s\n' "$name" "$pid" "$M2M_HOST" "$(port_of "$name")"
  else
    printf '%-8s down\n' "$name"; return 1
  fi
}

spark_status() {
  if [ -x "$M2M_VENV/bin/python" ] && compgen -G "$M2M_JARS/spark/spark-sql-kafka-*.jar" >/dev/null; then
    printf '%-8s ready (local mode: %s)\n' spark "$("$M2M_VENV/bin/python" -c 'import pyspark;print("pyspark "+pyspark.__version__)')"
  else
    printf '%-8s not installed (run stack/install.sh)\n' spark; return 1
  fi
}

cmd=${1:-status}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for n in "${names[@]}"; do
  case $n in mariadb|kafka|mongo) ;; *) die "unknown component '$n' (expected: ${ALL[*]})" ;; esac
done
case $cmd in
  up) for n in "${names[@]}"; do up "$n"; done ;;
  down) for ((i=${#names[@]}-1; i>=0; i--)); do down "${names[i]}"; done ;;
  status) rc=0; for n in "${names[@]}"; do status "$n" || rc=1; done; spark_status || rc=1; exit $rc ;;
  *) die "usage: stack/ctl.sh up|down|status [${ALL[*]}]" ;;
esac
