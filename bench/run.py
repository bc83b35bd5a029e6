"""`make bench`: every benchmark of bench/ in one run on one machine, then one table (bench/report.py)
of our figures beside their references: the server's raw upsert limit, the plain change-stream
reader and find(), Debezium's JDBC sink. Latency is measured at fixed fractions of each engine's
maximum, measured end to end just before (bench/latency_bench.py).
Writes bench/results/bench-<time>.json (machine, versions, date, every figure) and .md (the table).
Benchmarks print figures; a benchmark that breaks is reported in the table and makes the exit 1.

  .stack/venv/bin/python bench/run.py            # the full run, about 15-20 min on 2 cores
  .stack/venv/bin/python bench/run.py --short    # every step with small counts, to check the machinery
"""
import argparse
import json
import time
import traceback

import apply_bench
import benchlib
import capture_bench
import debezium_bench
import latency_bench
import memory_bench
import report
import spark_bench

FULL = {"apply": dict(events=100000, documents=20000), "capture": dict(events=50000),
        "spark": dict(events=100000, documents=20000, batch=5000), "latency_native": dict(seconds=20),
        "latency_spark": dict(seconds=30), "latency_spark-real-time": dict(seconds=30), "memory": dict(workloads=((400, 4), (60, 15)), backlog_events=10000000)}
SHORT = {"apply": dict(events=3000, documents=600, batch=500), "capture": dict(events=300),
         "spark": dict(events=600, documents=200, batch=200), "latency_native": dict(seconds=4),
         "latency_spark": dict(seconds=8), "latency_spark-real-time": dict(seconds=8), "memory": dict(workloads=((8, 4), (3, 15)), backlog_events=20000)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="small counts: checks that every step runs, figures mean little")
    sizes = SHORT if ap.parse_args().short else FULL
    results = {}

    def step(name, fn):
        started = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"bench: {name} took {time.monotonic() - started:.0f} s", flush=True)
        return results[name]

    step("apply", lambda: apply_bench.run(**sizes["apply"]))
    step("debezium", lambda: debezium_bench.run(**sizes["apply"]))  # same workload, so the tables must match
    step("spark", lambda: spark_bench.run(**sizes["spark"]))
    step("capture", lambda: capture_bench.run(**sizes["capture"]))
    step("memory", lambda: memory_bench.run(**sizes["memory"]))
    # Each engine's latency at fractions of its own maximum, which latency_bench measures end to end first.
    for engine in ("native", "spark", "spark-real-time"):
        step(f"latency_{engine}", lambda: latency_bench.run(engine, **sizes[f"latency_{engine}"]))

    run = {"machine": benchlib.machine(), "short": sizes is SHORT, "results": results}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    benchlib.RESULTS.mkdir(exist_ok=True)
    (benchlib.RESULTS / f"bench-{stamp}.json").write_text(json.dumps(run, indent=2) + "\n")
    text = report.table(run)
    (benchlib.RESULTS / f"bench-{stamp}.md").write_text(text + "\n")
    print("\n" + text + f"\n\nwritten to bench/results/bench-{stamp}.json and .md")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
