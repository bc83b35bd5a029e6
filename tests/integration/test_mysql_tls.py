"""TLS to MySQL (--mysql-ssl-mode, --mysql-ssl-ca, --mysql-ssl-cert, --mysql-ssl-key) against the
stack's MariaDB, which serves a certificate of the stack's own CA for 127.0.0.1 and localhost
(stack/ctl.sh make_tls): apply lands rows over verified TLS; a CA of the test's own, one the server's
certificate is not signed by, fails verification with an error naming server, CA file and cause, at
once (not retried); VERIFY_CA takes any host name where VERIFY_IDENTITY does not; a client
certificate reaches an account that requires one; and every TLS mode refuses a server that offers no
TLS instead of going on in plain text, made by a proxy of the test's own that strips TLS from the
server's greeting as an attacker between the two would."""
import socket
import subprocess
import threading

import pymysql
import pytest

import pipeline
import stack
from test_apply import make_topic, produce, topics  # noqa: F401

TLS = stack.STATE / "tls"
CA = TLS / "ca.pem"
CLIENT_SSL = 0x0800  # the server's greeting offers TLS (capability flags, lower half)


@pytest.fixture(scope="module")
def tls_stack():
    """Skips when the stack's MariaDB was started before the stack served TLS (its state has no CA);
    a stack started since (make up, the CI) must serve it."""
    if not CA.exists():
        pytest.skip(f"the stack's MariaDB serves no TLS (no {CA}: started before the stack served TLS); "
                    "'make down && make up' restarts it with TLS")
    conn = pymysql.connect(**stack.MYSQL)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
            have_ssl = cur.fetchone()[1]
    finally:
        conn.close()
    assert have_ssl == "YES", f"{CA} exists but MariaDB at {stack.MYSQL['port']} does not serve TLS (have_ssl {have_ssl})"


def run(args, timeout=120):
    return subprocess.run([str(stack.BINARY), *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})


def doctor(*mysql_args, host=None, port=None, user=None):
    """`mongo2mysql doctor` against the stack with these MySQL options: the output's MySQL part."""
    result = run(["doctor", "--mongo-uri", stack.MONGO_URI + "/?serverSelectionTimeoutMS=5000",
                  "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-host", host or stack.MYSQL["host"],
                  "--mysql-port", port or stack.MYSQL["port"], "--mysql-user", user or stack.MYSQL["user"],
                  *mysql_args])
    assert "mongodb" in result.stdout, result.stdout + result.stderr
    return result.stdout[result.stdout.index("kafka"):]


def make_ca(tmp_path, name="test-own CA"):
    """A CA of the test's own (no server's certificate is signed by it)."""
    key, cert = tmp_path / "own-ca-key.pem", tmp_path / "own-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert


class MysqlProxy:
    """Forwards <host>:<port> to the stack's MariaDB. With strip_tls it clears CLIENT_SSL in the
    server's greeting: the client sees a server that offers no TLS."""

    def __init__(self, host="127.0.0.1", strip_tls=False):
        self.strip_tls = strip_tls
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((stack.MYSQL["host"], stack.MYSQL["port"]), timeout=30)
            server.settimeout(None)
            if self.strip_tls:
                client.sendall(self._stripped(self._packet(server)))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pipeline.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _packet(sock):
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:3], "little"):
            chunk = sock.recv(65536)
            assert chunk, "MariaDB closed the connection before its greeting"
            data += chunk
        return data

    @staticmethod
    def _stripped(packet):
        # Protocol 10 greeting: version byte, server version (NUL-terminated), connection id (4),
        # scramble part 1 (8), filler (1), then the lower two bytes of the capability flags.
        at = packet.index(b"\0", 5) + 1 + 4 + 8 + 1
        flags = int.from_bytes(packet[at:at + 2], "little") & ~CLIENT_SSL
        return packet[:at] + flags.to_bytes(2, "little") + packet[at + 2:]


# ---------------------------------------------------------------------------------------------


def test_apply_over_verified_tls_lands_the_rows(tls_stack, mysql_db, topics, tmp_path):  # noqa: F811
    database, conn = mysql_db
    prefix = stack.unique("tls")
    topic = make_topic(prefix, "tls", 1)
    topics.append(topic)
    produce(topic, prefix, [
        {"op": "insert", "collection": "tls", "document": '{"_id": 1, "name": "Ada", "n": 10}'},
        {"op": "insert", "collection": "tls", "document": '{"_id": 2, "name": "Brendan", "n": 20}'},
        {"op": "insert", "collection": "tls", "document": '{"_id": 3, "name": "Cy", "n": 30}'},
        {"op": "update", "collection": "tls", "document": '{"_id": 2, "name": "Bren", "n": 21}'},
        {"op": "delete", "collection": "tls", "key": '{"_id": 3}'},
    ])
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        accepts = int(cur.fetchone()[1])
    tls = ["--mysql-ssl-mode", "VERIFY_IDENTITY", "--mysql-ssl-ca", CA]
    pipeline.run_apply(database, stack.unique("g"), [topic], extra=[str(a) for a in tls])
    with conn.cursor() as cur:
        cur.execute("SELECT `_id`, name, n FROM tls ORDER BY `_id`")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "Ada", 10), (2, "Bren", 21)]
        cur.execute("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        assert int(cur.fetchone()[1]) > accepts  # the server's side of it

    # status reads apply's tables over the same settings; doctor says how it connected.
    result = run(["status", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topic-prefix", prefix,
                  "--mysql-host", stack.MYSQL["host"], "--mysql-port", stack.MYSQL["port"],
                  "--mysql-database", database, "--interval", "0", "--json", *tls])
    assert result.returncode == 0, result.stderr
    assert f"{stack.MYSQL['host']}:{stack.MYSQL['port']}, TLS TLS_" in doctor(*tls)


def test_a_ca_that_did_not_sign_the_servers_certificate_fails_at_once_naming_it(tls_stack, tmp_path):
    own_ca = make_ca(tmp_path)
    for mode in ("VERIFY_IDENTITY", "VERIFY_CA", "REQUIRED"):  # REQUIRED checks a CA that is given
        # apply would wait out --retry-for (600 s) for an error a retry can cure: this one stops it.
        result = run(pipeline.apply_args(stack.unique("t"), stack.unique("g"), ["unused"],
                                         extra=["--mysql-ssl-mode", mode, "--mysql-ssl-ca", str(own_ca)])
                     + ["--until-caught-up"], timeout=90)
        assert result.returncode == 1, (mode, result.stdout, result.stderr)
        error = result.stderr
        assert f"TLS to MySQL at {stack.MYSQL['host']}:{stack.MYSQL['port']} as {stack.MYSQL['user']} failed" in error
        assert "certificate" in error and f"signed by the CA in {own_ca}" in error and f"ssl mode {mode}" in error


def test_verify_ca_takes_any_host_name_verify_identity_only_the_servers(tls_stack):
    proxy = MysqlProxy(host="127.0.0.2")  # the certificate names 127.0.0.1 and localhost only
    try:
        ok = doctor("--mysql-ssl-mode", "VERIFY_CA", "--mysql-ssl-ca", CA, host=proxy.host, port=proxy.port)
        assert "mysql    ok" in ok and ", TLS TLS_" in ok, ok
        refused = doctor("--mysql-ssl-mode", "VERIFY_IDENTITY", "--mysql-ssl-ca", CA, host=proxy.host, port=proxy.port)
        assert f"TLS to MySQL at 127.0.0.2:{proxy.port} as {stack.MYSQL['user']} failed" in refused, refused
        assert f"signed by the CA in {CA} and name 127.0.0.2" in refused, refused
    finally:
        proxy.close()


def test_required_without_a_ca_encrypts_and_a_config_file_takes_the_settings(tls_stack, tmp_path):
    out = doctor("--mysql-ssl-mode", "required")
    assert "mysql    ok" in out and ", TLS TLS_" in out and "ssl mode REQUIRED" in out, out
    config = tmp_path / "doctor.yaml"
    config.write_text(f"mysql:\n  host: {stack.MYSQL['host']}\n  port: {stack.MYSQL['port']}\n"
                      f"  ssl-mode: VERIFY_IDENTITY\n  ssl-ca: {CA}\n")
    result = run(["doctor", "--config", config, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                  "--mongo-uri", stack.MONGO_URI + "/?serverSelectionTimeoutMS=5000"])
    assert "mysql    ok" in result.stdout and "ssl mode VERIFY_IDENTITY" in result.stdout, result.stdout + result.stderr


def test_a_client_certificate_reaches_an_account_that_requires_one(tls_stack, mysql_db):
    _, conn = mysql_db
    user, password = stack.unique("x509"), "pw-" + stack.unique("p")
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'{stack.MYSQL['host']}' IDENTIFIED BY %s REQUIRE X509", (password,))
    try:
        def connect(*tls):
            result = subprocess.run(
                [str(stack.BINARY), "doctor", "--mongo-uri", stack.MONGO_URI + "/?serverSelectionTimeoutMS=5000",
                 "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--mysql-host", stack.MYSQL["host"],
                 "--mysql-port", str(stack.MYSQL["port"]), "--mysql-user", user, *[str(a) for a in tls]],
                capture_output=True, text=True, timeout=120, env={"M2M_MYSQL_PASSWORD": password})
            return result.stdout
        tls = ["--mysql-ssl-mode", "VERIFY_IDENTITY", "--mysql-ssl-ca", CA]
        assert "mysql    ok" in connect(*tls, "--mysql-ssl-cert", TLS / "client-cert.pem",
                                        "--mysql-ssl-key", TLS / "client-key.pem")
        without = connect(*tls)
        assert "Access denied" in without and password not in without, without
        assert "Access denied" in connect()  # nor without TLS
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'{stack.MYSQL['host']}'")


def test_every_tls_mode_refuses_a_server_that_offers_no_tls(tmp_path):
    """Runs on any stack: the proxy takes TLS out of what the server offers (so no certificate is
    ever checked, and any CA file does)."""
    ca = make_ca(tmp_path)
    proxy = MysqlProxy(strip_tls=True)
    try:
        plain = doctor(port=proxy.port)  # TLS off: a plain connection, through the same proxy
        assert "mysql    ok" in plain and f"127.0.0.1:{proxy.port}, plain TCP" in plain, plain
        for mode in ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"):
            out = doctor("--mysql-ssl-mode", mode, "--mysql-ssl-ca", ca, port=proxy.port)
            assert (f"MySQL at 127.0.0.1:{proxy.port} does not offer TLS, which ssl mode {mode} requires; "
                    "not connecting in plain text") in out, out
    finally:
        proxy.close()


def test_tls_settings_that_would_not_protect_are_refused(tmp_path):
    for args, error in [
        (["--mysql-ssl-ca", tmp_path], "while mysql.ssl_mode is DISABLED"),
        (["--mysql-ssl-mode", "VERIFY_CA"], "VERIFY_CA needs mysql.ssl_ca (--mysql-ssl-ca)"),
        (["--mysql-ssl-mode", "REQUIRED", "--mysql-ssl-cert", tmp_path / "c.pem"], "go together"),
        (["--mysql-ssl-mode", "REQUIRED", "--mysql-ssl-ca", tmp_path / "missing.pem"],
         f"mysql.ssl_ca {tmp_path / 'missing.pem'} cannot be read: No such file or directory"),
    ]:
        assert error in doctor(*args), args
    result = run(["apply", "--mysql-database", "x", "--topics", "x", "--mysql-ssl-mode", "PREFERRED"])
    assert result.returncode == 2 and "--mysql-ssl-mode" in result.stderr, result.stderr
    help_text = run(["apply", "--help"]).stdout
    for option in ("--mysql-ssl-mode", "--mysql-ssl-ca", "--mysql-ssl-cert", "--mysql-ssl-key"):
        assert option in help_text
