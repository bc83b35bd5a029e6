"""--config FILE: YAML keys are the long option names, ${ENV} is expanded, the command line wins,
and mistakes are errors naming the key."""
import subprocess

import pipeline
import stack


def run(args, env=None, timeout=60):
    return subprocess.run([str(stack.BINARY), *args], capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_config_file_sets_options_secrets_come_from_the_environment_and_flags_win(mongo_db, tmp_path):
    prefix = stack.unique("cfg")
    config = tmp_path / "capture.yaml"
    config.write_text(f"""
mongo-uri: {stack.MONGO_URI}
db: {mongo_db.name}
collection: c
name: from-file
topic-prefix: {prefix}
kafka-bootstrap: {stack.KAFKA_BOOTSTRAP}
kafka:
  client.id: ${{CLIENT_ID}}
""")
    cap = pipeline.Process(["capture", "--config", config, "--name", "from-flag"], tmp_path / "cfg.log",
                           env={"CLIENT_ID": "mongo2mysql-config-test"})
    cap.name = "from-flag"
    try:
        pipeline.wait_for_checkpoint(prefix, cap)  # the checkpoint topic's prefix came from the file
    finally:
        cap.stop()
    assert pipeline.stream_checkpoint(prefix, "from-flag")["scope"] == f"collection:{mongo_db.name}.c"
    assert pipeline.stream_checkpoint(prefix, "from-file") is None


def test_config_mistakes_name_the_key(tmp_path):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("mysql:\n  hots: db1\n")
    result = run(["apply", "--config", str(unknown)])
    assert result.returncode == 2
    assert "config key mysql-hots is not an option of 'mongo2mysql apply'" in result.stderr

    secret = tmp_path / "secret.yaml"
    secret.write_text("kafka:\n  sasl.password: ${NO_SUCH_VARIABLE_SET}\n")
    result = run(["capture", "--config", str(secret)])
    assert result.returncode == 2
    assert "config key kafka.sasl.password: environment variable NO_SUCH_VARIABLE_SET is not set" in result.stderr

    missing = run(["capture", "--config", str(tmp_path / "nope.yaml")])
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr
