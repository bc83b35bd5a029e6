# Sourced by every stack script: where things live and which ports they use.
# Each setting can be overridden from the environment; the defaults suit one developer machine.
M2M_ROOT=${M2M_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# All runtime state (server data, logs, venv, jars) lives here; git ignores it.
M2M_STATE=${M2M_STATE:-$M2M_ROOT/.stack}
M2M_HOST=${M2M_HOST:-127.0.0.1}
M2M_MYSQL_PORT=${M2M_MYSQL_PORT:-3306}
M2M_MYSQL_USER=${M2M_MYSQL_USER:-mongo2mysql}
M2M_MYSQL_PASSWORD=${M2M_MYSQL_PASSWORD:-mongo2mysql}
M2M_MYSQL_DATABASE=${M2M_MYSQL_DATABASE:-mongo2mysql}
M2M_KAFKA_PORT=${M2M_KAFKA_PORT:-9092}
M2M_KAFKA_CONTROLLER_PORT=${M2M_KAFKA_CONTROLLER_PORT:-9093}
M2M_MONGO_PORT=${M2M_MONGO_PORT:-27017}
# The stand-in's oplog cap, read by stack/mongo-launcher when set: M2M_MONGO_OPLOG_MAX_BYTES (default
# 128 MiB) and M2M_MONGO_OPLOG_MAX_EVENTS (default 0: no count limit); for tests of MongoDB 7.0's split
# events, M2M_MONGO_MAX_WIRE_VERSION and M2M_MONGO_SPLIT_EVENT_BYTES (stack/mongo-launcher/MongoStandIn.java).
# Downloads live outside the checkout so a fresh clone (CI) reuses them.
M2M_MAVEN_REPO=${M2M_MAVEN_REPO:-$HOME/.m2/repository}
M2M_VENV=${M2M_VENV:-$M2M_STATE/venv}
# Another state folder (a second stack on other ports, e.g. the fault campaign's) can share the jars.
M2M_JARS=${M2M_JARS:-$M2M_STATE/jars}
M2M_LOGS=$M2M_STATE/logs
# The local CA, MariaDB's server certificate and a client certificate (stack/ctl.sh make_tls).
M2M_TLS=$M2M_STATE/tls
export M2M_ROOT M2M_STATE M2M_HOST M2M_MYSQL_PORT M2M_MYSQL_USER M2M_MYSQL_PASSWORD M2M_MYSQL_DATABASE \
  M2M_KAFKA_PORT M2M_KAFKA_CONTROLLER_PORT M2M_MONGO_PORT M2M_MAVEN_REPO M2M_VENV M2M_JARS

say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
