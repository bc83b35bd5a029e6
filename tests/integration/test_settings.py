"""The one table of settings (cli/settings.cc): the commands' options, their environment variables,
the Spark job's options (the same names as apply's, old names still accepted) and --log-format json
in real runs. That docs/configuration.md and the Spark job's table are current is the ctest
settings_reference_current."""
import json
import os
import re
import subprocess
from datetime import datetime

import pipeline
import stack


def run(args, env=None, timeout=120):
    return subprocess.run([str(stack.BINARY), *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", **(env or {})})


def json_lines(text):
    """Every line of `text` as a JSON object (a line that is not one fails the test, naming it)."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines


def assert_log_line(line, **fields):
    assert list(line)[:3] == ["time", "level", "message"], line
    assert datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ"), line
    assert line["level"] in ("trace", "debug", "info", "warning", "error", "critical"), line
    for key, value in fields.items():
        assert line[key] == value, line


def test_help_shows_the_tables_defaults_and_environment_variables():
    result = run(["apply", "--help"])
    assert result.returncode == 0, result.stderr
    for text in ("--max-batch-ms", "500", "M2M_MYSQL_HOST", "M2M_KAFKA_BOOTSTRAP", "--log-format", "{text,json}"):
        assert text in result.stdout, (text, result.stdout)


def test_an_environment_variable_sets_an_option_and_the_command_line_wins():
    # doctor reports the MySQL server it reached (or the address it could not reach).
    unreachable = run(["doctor"], env={"M2M_MYSQL_PORT": "1", "M2M_MONGO_URI": stack.MONGO_URI})
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr
    mysql = [line for line in unreachable.stdout.splitlines() if line.startswith("mysql")]
    assert mysql and "ok" not in mysql[0], unreachable.stdout
    assert ":1" in mysql[0] or "port 1" in mysql[0] or "(111)" in mysql[0], unreachable.stdout

    given = run(["doctor", "--mysql-port", stack.MYSQL["port"], "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP],
                env={"M2M_MYSQL_PORT": "1", "M2M_MONGO_URI": stack.MONGO_URI,
                     "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    assert given.returncode == 0, given.stdout + given.stderr
    assert f"127.0.0.1:{stack.MYSQL['port']}" in given.stdout, given.stdout


def test_a_password_in_a_config_file_is_refused_naming_the_variable(tmp_path):
    config = tmp_path / "apply.yaml"
    config.write_text("mysql:\n  password: secret\n")
    result = run(["apply", "--config", config])
    assert result.returncode == 2
    assert "config key mysql-password: it comes from the environment variable M2M_MYSQL_PASSWORD" in result.stderr


def test_bad_log_settings_are_usage_errors():
    result = run(["capture", "--log-format", "xml"])
    assert result.returncode == 2 and "--log-format" in result.stderr, result.stderr
    result = run(["apply", "--mysql-database", "x", "--log-level", "verbose"])
    assert result.returncode == 2 and "--log-level" in result.stderr, result.stderr


def test_capture_and_apply_log_json_lines(mongo_db, mysql_db, tmp_path):
    prefix = stack.unique("logs")
    mongo_db.c.insert_many([{"_id": i, "v": i} for i in range(3)])
    capture = pipeline.start_capture(tmp_path, mongo_db.name, "c", prefix=prefix, name="logged",
                                     extra=["--log-format", "json", "--metrics-port", "0"])
    try:
        pipeline.metrics_url(capture)  # found in the "message" of a JSON line
        pipeline.wait_for_checkpoint(prefix, capture)
    finally:
        assert capture.stop() == 0, capture.log()[-3000:]
    lines = json_lines(capture.log())
    for line in lines:
        assert_log_line(line, command="capture", capture="logged")
    assert any(line["message"].startswith("metrics at http://") for line in lines), lines

    database, conn = mysql_db
    topic = f"{prefix}.{mongo_db.name}.c"
    group = stack.unique("g")
    result = pipeline.run_apply(database, group, topics=[topic], extra=["--log-format", "json"])
    lines = json_lines(result.stdout)
    assert any(re.search(r"caught up: \d+ events in", line["message"]) for line in lines), lines
    for line in lines:
        assert_log_line(line, command="apply", group=group)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{database}`.`c`")
        assert cur.fetchone()[0] == 3
    # The environment sets the level: a second run (nothing left to apply) logs no info lines.
    quiet = subprocess.run([str(stack.BINARY), *pipeline.apply_args(database, group, [topic]), "--until-caught-up",
                            "--log-format", "json"], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"], "M2M_LOG_LEVEL": "warn"})
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert all(line["level"] in ("warning", "error") for line in json_lines(quiet.stdout)), quiet.stdout


def test_spark_job_takes_apply_names_and_its_old_ones(monkeypatch):
    from m2m_spark import job
    from m2m_spark.settings_table import SETTINGS

    # The table's defaults, not a stack on other ports (CI runs one with M2M_MYSQL_PORT set).
    for s in SETTINGS:
        if s["env"]:
            monkeypatch.delenv(s["env"], raising=False)

    args = job.parse_args(["--topics", "t", "--mysql-database", "d", "--group", "g", "--accept-lost-events",
                           "--log-format", "json"])
    assert (args.group, args.accept_lost_events, args.log_format) == ("g", True, "json")
    assert (args.max_batch_ms, args.max_batch_events, args.retry_for, args.mysql_port) == (100, 5000, 600, 3306)
    old = job.parse_args(["--topics", "t", "--mysql-database", "d", "--job-name", "j", "--allow-data-loss"])
    assert (old.group, old.accept_lost_events) == ("j", True)
    # Every name the job shares with the native engine is apply's (the table has one row per meaning).
    native = run(["apply", "--help"]).stdout
    spark_only = {"kafka-option", "max-offsets-per-trigger", "checkpoint", "trigger-interval", "real-time",
                  "real-time-epoch", "master"}
    for s in SETTINGS:
        assert s["name"] in spark_only or f"--{s['name']}" in native, s["name"]
