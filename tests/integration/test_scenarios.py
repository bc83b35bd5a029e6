"""Every scenario file through every engine, batched and one event per batch: the MySQL tables
must be exactly what the scenario expects (the conformance suite of the two sinks)."""
import pymysql
import pytest

import engines
import scenarios
import stack


# Spark's batched run of every scenario is test_spark_conformance.py's, which checks the same
# expectation and compares it with the native engine's tables: not run twice.
RUNS = [pytest.param(engine, max_batch_events, id=f"{engine}-{name}")
        for engine in sorted(engines.ENGINES) for max_batch_events, name in ((None, "batched"), (1, "one-per-batch"))
        if (engine, max_batch_events) != ("spark", None)]


@pytest.mark.parametrize("engine,max_batch_events", RUNS)
@pytest.mark.parametrize("path", scenarios.scenario_files(), ids=lambda p: p.stem)
def test_scenario(path, engine, max_batch_events, mysql_db, tmp_path):
    scenarios.skip_unless_for(path, engine)
    database, _ = mysql_db
    run = scenarios.prepare(path, database, tmp_path, max_batch_events)
    engines.ENGINES[engine](run)
    raw = pymysql.connect(**stack.MYSQL, conv={})  # text protocol values, unconverted
    try:
        scenarios.assert_matches(run.scenario, scenarios.table_state(raw, database))
    finally:
        raw.close()
