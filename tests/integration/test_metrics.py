"""The metrics capture and apply serve (docs/metrics.md), the Grafana dashboard and the Prometheus alert
rules under deploy/: the histograms and per-partition gauges carry real values after real events, the
alert rules load and pass their unit tests (promtool), and the dashboard and the rules name only
metrics the daemons actually serve, so neither can drift from the code."""
import json
import re
import shutil
import subprocess

import yaml
from confluent_kafka import Producer

import pipeline
import stack
from pipeline import metric_families, metrics_url, scrape

DASHBOARD = stack.ROOT / "deploy" / "grafana" / "dashboards" / "mongo2mysql.json"
ALERTS = stack.ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = stack.ROOT / "deploy" / "prometheus" / "alerts_test.yml"
METRICS_DOC = stack.ROOT / "docs" / "metrics.md"
# What Prometheus itself adds for every target: the alert rules may use it.
PROMETHEUS_SERIES = {"up"}
# PromQL words that look like metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
            "inf", "nan", "Inf", "NaN"}


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: stack/install.sh installs Debian's prometheus package, which has it"
    return path


def dashboard_expressions():
    """Every PromQL expression of the dashboard: its panels' queries and its variables' label_values."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.fullmatch(r"label_values\((.+), *\w+\)", var["definition"]).group(1))
    return exprs


def alert_expressions():
    rules = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def metric_names(expr):
    """The metric names a PromQL expression selects: what is left after strings, label matchers,
    ranges and label lists are taken out, less function names and keywords."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", e):
        if m.group() in KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group())
    return names


def concrete(expr):
    """The expression with the dashboard's variables replaced, so promtool can parse it."""
    return expr.replace("$capture", ".*").replace("$group", ".*")


def test_metric_names_are_read_from_promql():
    assert metric_names('histogram_quantile(0.99, sum by (group, le) (rate(m2m_a_bucket{group=~"$group"}[5m])))') \
        == {"m2m_a_bucket"}
    assert metric_names("m2m_lag > 0.5 * m2m_window and m2m_window > 0") == {"m2m_lag", "m2m_window"}
    assert metric_names('count((min_over_time(a[10m]) > 1e3) unless on (job, topic) (increase(b{x="y z"}[10m]) > 0)) '
                        "or vector(0)") == {"a", "b"}


def test_alert_rules_load_and_pass_their_unit_tests():
    check = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in check.stdout
    unit = subprocess.run([promtool(), "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True,
                          timeout=120)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout
    # The unit tests cover these alerts at least.
    tested = {t["alertname"] for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
              for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert {"M2MCaptureLagApproachingOplogWindow", "M2MApplyPartitionStalled", "M2MQuarantineGrowing",
            "M2MLatencyP99High"} <= tested


def test_dashboard_loads_and_its_queries_parse(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "mongo2mysql" and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for p in panels:
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]  # whichever Prometheus Grafana has
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
    # promtool parses every query (as a recording rule) with the variables filled in.
    exprs = dashboard_expressions()
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": concrete(e)}
                                                       for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    # What the dashboard shows, by title: what issue 13 asks of it.
    titles = " / ".join(p["title"] for p in panels).lower()
    for shown in ("oplog window", "lag per partition", "stalled", "latency", "batch sizes", "batch durations",
                  "quarantined", "dead letters", "ddl", "per second"):
        assert shown in titles, shown


def histogram(samples, name, labels):
    """count, sum and the cumulative buckets {le: count} of one histogram's samples."""
    buckets = {}
    for key, value in samples.items():
        m = re.fullmatch(re.escape(name) + r"_bucket\{" + re.escape(labels) + r',le="([^"]+)"\}', key)
        if m:
            buckets[float(m.group(1))] = value
    count = samples[f"{name}_count{{{labels}}}"]
    ordered = [buckets[le] for le in sorted(buckets)]
    assert ordered == sorted(ordered), (name, buckets)  # cumulative
    assert buckets[float("inf")] == count, (name, buckets)
    return count, samples[f"{name}_sum{{{labels}}}"], buckets


def test_histograms_and_partition_lag_follow_real_events(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    prefix = stack.unique("mx")
    group = stack.unique("g")
    ns = f"{mongo_db.name}.orders"
    topic = f"{prefix}.{ns}"
    orders = mongo_db["orders"]
    capture = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix, name="mx",
                                     extra=["--snapshot", "never", "--partitions", "2", "--metrics-port", "0"])
    apply = None
    try:
        capture_url = metrics_url(capture)
        pipeline.wait_for_checkpoint(prefix, capture, snapshot_done=False)
        # 55 change events, in a few bursts (capture commits them in several transactions).
        for start in (0, 20):
            orders.insert_many([{"_id": i, "name": f"o{i}"} for i in range(start, start + 20)])
        for i in range(10):
            orders.update_one({"_id": i}, {"$set": {"name": f"changed{i}"}})
        orders.delete_many({"_id": {"$gte": 35}})
        streamed = 40 + 10 + 5
        cl = '{capture="mx"}'
        stack.wait_for(lambda: scrape(capture_url).get("m2m_capture_events_total" + cl) == streamed, timeout=180,
                       what="capture to publish the 55 changes")
        # A record apply cannot decode: quarantined, and it has no MongoDB time, so no age.
        producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        producer.produce(topic, key=b'{"id": 99}', value=b"not json{", partition=0)
        assert producer.flush(60) == 0
        sent = streamed + 1

        apply = pipeline.start_apply(tmp_path, database, group, topics=[topic],
                                     extra=["--metrics-port", "0", "--max-batch-ms", "100"])
        apply_url = metrics_url(apply)
        gl = f'{{group="{group}"}}'
        stack.wait_for(lambda: scrape(apply_url).get("m2m_apply_events_total" + gl) == sent, timeout=180,
                       what="apply to apply every event")

        # Lag per partition: both partitions reported, both at 0 once caught up.
        def partitions_caught_up():
            m = scrape(apply_url)
            lags = {k: v for k, v in m.items() if k.startswith("m2m_apply_partition_lag_events{")}
            return m if len(lags) == 2 and all(v == 0 for v in lags.values()) else None
        a = stack.wait_for(partitions_caught_up, timeout=60, what="both partitions' lag to reach 0")
        for p in (0, 1):
            assert a[f'm2m_apply_partition_lag_events{{group="{group}",topic="{topic}",partition="{p}"}}'] == 0
        per_partition = [a[f'm2m_apply_partition_events_total{{group="{group}",topic="{topic}",partition="{p}"}}']
                         for p in (0, 1)]
        assert sum(per_partition) == sent and min(per_partition) > 0

        # Event age: one observation per change event applied, none for the undecodable record.
        count, total, buckets = histogram(a, "m2m_apply_event_age_seconds", f'group="{group}"')
        assert count == streamed
        assert 0 < total / count < 300  # seconds: the events waited for apply to start, on a loaded machine
        assert buckets[60] <= count
        # Batches: one observation per MySQL transaction, holding every event between them.
        batches = a["m2m_apply_batches_total" + gl]
        count, total, _ = histogram(a, "m2m_apply_batch_events", f'group="{group}"')
        assert (count, total) == (batches, sent)
        count, total, _ = histogram(a, "m2m_apply_batch_duration_seconds", f'group="{group}"')
        assert count == batches and total > 0
        assert a["m2m_apply_quarantined_total" + gl] == 1
        assert a["m2m_apply_ddl_statements_total" + gl] >= 1  # CREATE TABLE orders

        c = scrape(capture_url)
        count, total, _ = histogram(c, "m2m_capture_batch_events", 'capture="mx"')
        assert total >= streamed and 1 <= count <= c["m2m_capture_transactions_total" + cl]
        assert histogram(c, "m2m_capture_batch_duration_seconds", 'capture="mx"')[0] == count
        assert c["m2m_capture_dead_letters_total" + cl] == 0

        # The dashboard and the alert rules name only metrics the daemons serve.
        families = metric_families(capture_url) | metric_families(apply_url)
        served = set(families)
        for name, kind in families.items():
            if kind == "histogram":
                served |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        for expr in dashboard_expressions():
            assert metric_names(expr) <= served, f"the dashboard asks for {metric_names(expr) - served}: {expr}"
        for alert, expr in alert_expressions().items():
            unknown = metric_names(expr) - served - PROMETHEUS_SERIES
            assert not unknown, f"alert {alert} asks for {unknown}"
        # ...and docs/metrics.md describes every metric they serve.
        doc = METRICS_DOC.read_text()
        undocumented = [name for name in families if f"`{name}`" not in doc]
        assert not undocumented, f"docs/metrics.md does not list {undocumented}"
    finally:
        if apply:
            apply.stop()
        capture.stop()
