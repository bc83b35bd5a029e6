"""Secrets stay out of argv and output: Kafka secrets on the command line are refused (any user of
the machine reads argv with ps) while a config file may take them from the environment; doctor prints
the MongoDB URI without its password; the metrics endpoints listen on loopback unless told otherwise."""
import subprocess

import stack


def run(args, env=None, timeout=120):
    return subprocess.run([str(stack.BINARY), *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_kafka_secrets_on_the_command_line_are_refused():
    for command, spelled in [("apply", ["--kafka", "sasl.password=hunter2"]),
                             ("capture", ["--kafka=ssl.key.password=hunter2"]),
                             ("status", ["--kafka", "sasl.username=u", "sasl.oauthbearer.client.secret=hunter2"]),
                             ("apply", ["--kafka", "ssl.keystore.password=hunter2"])]:
        result = run([command, *spelled])
        assert result.returncode == 2, (command, spelled, result.stderr)
        key = spelled[-1].removeprefix("--kafka=").split("=")[0]
        assert f"--kafka {key}=...: secrets are not accepted on the command line" in result.stderr, result.stderr
        assert "--config" in result.stderr and "${KAFKA_SECRET}" in result.stderr
        assert "hunter2" not in result.stderr


def test_a_config_file_takes_kafka_secrets_from_the_environment(tmp_path):
    config = tmp_path / "status.yaml"
    config.write_text(f"kafka-bootstrap: {stack.KAFKA_BOOTSTRAP}\ntopic-prefix: {stack.unique('none')}\n"
                      "kafka:\n  sasl.username: u\n  sasl.password: ${KAFKA_PASSWORD}\n")
    result = run(["status", "--config", config, "--interval", "0"], env={"KAFKA_PASSWORD": "hunter2"})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_doctor_prints_the_mongodb_uri_without_its_password():
    uri = f"mongodb://cdc:hunter2@{stack.MONGO_URI.removeprefix('mongodb://')}/?authSource=admin&serverSelectionTimeoutMS=5000"
    result = run(["doctor", "--mongo-uri", uri, "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
                  "--mysql-host", stack.MYSQL["host"], "--mysql-port", stack.MYSQL["port"],
                  "--mysql-user", stack.MYSQL["user"]], env={"M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    # The stand-in knows no users, so the MongoDB line is an error; either way it names the URI.
    assert f"mongodb://cdc:***@{stack.MONGO_URI.removeprefix('mongodb://')}" in result.stdout, result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert "mysql    ok" in result.stdout and "kafka    ok" in result.stdout, result.stdout


def test_metrics_listen_on_loopback_by_default():
    for command in ("apply", "capture"):
        result = run([command, "--help"])
        assert result.returncode == 0
        assert "--metrics-host TEXT=127.0.0.1" in result.stdout, result.stdout
