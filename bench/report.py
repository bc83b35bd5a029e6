"""The one table of a `make bench` run (bench/run.py), from its combined JSON.

  .stack/venv/bin/python bench/report.py bench/results/bench-<time>.json   # print that run's table
"""
import json
import sys


def _n(value, digits=0):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(a, b):
    return f"**{a / b:.2f}**" if a and b else "n/a"


def _stages(step):
    """The latency's split at capture (bench/latency_bench.py, stages), p50 / p99 of each part."""
    st = step.get("stages", {})
    if not st.get("to_capture"):
        return ""
    a, b = st["to_capture"], st["capture_to_mysql"]
    return (f"; write -> capture {a['p50']:.3f} / {a['p99']:.3f} s, "
            f"capture -> MySQL {b['p50']:.3f} / {b['p99']:.3f} s (p50 / p99)")


def _failed(results, name):
    error = results.get(name, {}).get("error")
    return [f"| {name} | failed: {error} | | |"] if error else []


def table(run):
    """Markdown: what was measured, our figure, the reference beside it, their ratio."""
    r, m = run["results"], run["machine"]
    lines = [f"mongo2mysql benchmarks, {m['date']}, commit {m['commit']}{' (--short)' if run.get('short') else ''}",
             f"machine: {m['cores']} x {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v), "",
             "| figure | mongo2mysql | reference | ratio ours / reference |", "|---|---|---|---|"]
    apply, dbz, spark, cap = (r.get(k, {}) for k in ("apply", "debezium", "spark", "capture"))
    if "apply" in apply:
        w = apply["workload"]
        ours = apply["apply"]["events_per_s"]
        lines.append(f"| apply (native), events/s, {w['events']:,} events of the mix, {w['partitions']} partitions "
                     f"| {_n(ours)} | raw multi-row upsert {_n(apply['raw_upsert_rows_per_s'])} rows/s "
                     f"| {_ratio(ours, apply['raw_upsert_rows_per_s'])} |")
        if "debezium_jdbc_sink" in dbz:
            theirs = dbz["debezium_jdbc_sink"]["events_per_s"]
            same = "same rows and checksums" if dbz["tables"] == apply["tables"] else \
                f"**tables differ** (ours {apply['tables']}, Debezium {dbz['tables']})"
            lines.append(f"| peer: Debezium JDBC sink {m['versions'].get('debezium_jdbc')}, events/s, same workload "
                         f"| {_n(ours)} | {_n(theirs)} ({same}) | {_ratio(ours, theirs)} |")
    lines += _failed(r, "apply") + _failed(r, "debezium")
    if "spark" in spark:
        native = apply.get("apply", {}).get("events_per_s")
        same_work = native and apply["workload"]["events"] == spark["workload"]["events"]
        lines.append(f"| Spark engine (local[2]), events/s, {spark['workload']['events']:,} events of the mix "
                     f"| {_n(spark['spark']['events_per_s'])} "
                     + (f"| native apply {_n(native)} (same workload) | {_ratio(spark['spark']['events_per_s'], native)} |"
                        if same_work else "| | |"))
    lines += _failed(r, "spark")
    if "streaming" in cap:
        s, snap = cap["streaming"], cap["snapshot"]
        writer = cap["workload"]["events"] / s["writes_seconds"]
        lines.append(f"| capture streaming while pymongo writes {cap['workload']['events']:,} documents, events/s "
                     f"| {_n(s['capture_events_per_s'])} | the writer {_n(writer)}; plain change-stream reader "
                     f"on the backlog {_n(s['plain_reader_events_per_s'])} | {_ratio(s['capture_events_per_s'], writer)} "
                     f"of the writer, {s['ratio']:.3f} of the reader |")
        lines.append(f"| capture snapshot, docs/s | {_n(snap['capture_docs_per_s'])} "
                     f"| plain find() {_n(snap['find_docs_per_s'])} | **{snap['ratio']:.3f}** |")
        if "catch_up" in cap:
            c = cap["catch_up"]
            lines.append(f"| capture catch-up: restarted into a backlog of {cap['workload']['events']:,} events "
                         f"(process start included), events/s | {_n(c['capture_events_per_s'])} in "
                         f"{c['capture_transactions']} transactions | plain reader resumed from the same token "
                         f"{_n(c['plain_reader_resumed_events_per_s'])} | **{c['ratio']:.3f}** |")
    lines += _failed(r, "capture")
    for engine in ("native", "spark", "spark-real-time"):
        lat = r.get(f"latency_{engine}", {})
        if "saturation" in lat:
            sat = lat["saturation"]
            lines.append(f"| maximum end to end, {engine}: writing as fast as possible ({_n(sat['events'])} "
                         f"documents), write -> MySQL row, events/s | {_n(sat['end_to_end_per_s'], 1)} "
                         f"(writer {_n(sat['writer_per_s'], 1)}/s) | | |")
        for step in lat.get("rates", []):
            lines.append(f"| latency MongoDB write -> MySQL row, {engine}, {step['fraction']:.0%} of "
                         f"{_n(lat['max_rate_per_s'], 1)}/s (achieved {_n(step['achieved_per_s'], 1)}/s) "
                         f"| p50 {step['p50']:.3f} s, p95 {step['p95']:.3f} s, p99 {step['p99']:.3f} s{_stages(step)} | | |")
        lines += _failed(r, f"latency_{engine}")
    cpu = {
        "apply (draining)": apply.get("apply", {}).get("cpu_us_per_event"),
        "capture (streaming)": cap.get("streaming", {}).get("capture_cpu_us_per_event"),
        "capture (catch-up)": cap.get("catch_up", {}).get("capture_cpu_us_per_event"),
        "capture (snapshot, per document)": cap.get("snapshot", {}).get("capture_cpu_us_per_doc"),
    }
    if any(v is not None for v in cpu.values()):
        lines.append("| CPU per event (user + system, every thread), µs | "
                     + ", ".join(f"{k} {_n(v, 1)}" for k, v in cpu.items() if v is not None) + " | | |")
    memory = {
        "apply": apply.get("peak_rss_mb", {}).get("apply"),
        "capture (streaming)": cap.get("peak_rss_mb", {}).get("capture_streaming"),
        "capture (snapshot)": cap.get("peak_rss_mb", {}).get("capture_snapshot"),
        "capture (latency run, native)": r.get("latency_native", {}).get("peak_rss_mb", {}).get("capture", {}).get("mongo2mysql"),
        "apply (latency run)": r.get("latency_native", {}).get("peak_rss_mb", {}).get("native", {}).get("mongo2mysql"),
        "Spark driver JVM": spark.get("peak_rss_mb", {}).get("spark_driver_jvm"),
        "Spark driver Python": spark.get("peak_rss_mb", {}).get("spark_driver_python"),
    }
    for w in r.get("memory", {}).get("workloads", []):
        lines.append(f"| large documents: {w['documents']} x {w['document_mib']} MiB snapshotted, then applied; "
                     f"peak RSS, MiB | capture {_n(w['capture']['peak_rss_mib'])}, apply {_n(w['apply']['peak_rss_mib'])} "
                     f"| capture's --max-buffer-bytes {w['max_buffer_mib']} MiB; the documents "
                     f"{_n(w['total_mib'])} MiB | |")
    lines += _failed(r, "memory")
    peer = dbz.get("peak_rss_mb", {}).get("kafka_connect")
    lines.append("| peak RSS, MB | " + ", ".join(f"{k} {_n(v)}" for k, v in memory.items() if v is not None)
                 + f" | Kafka Connect + Debezium JVM {_n(peer)} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(open(sys.argv[1]).read())))
