"""Every scenario file through every engine, batched and one event per batch: the MySQL tables
must be exactly what the scenario expects (the conformance suite of the two sinks)."""
import pymysql
import pytest

import engines
import scenarios
import stack


@pytest.mark.parametrize("max_batch_events", [None, 1], ids=["batched", "one-per-batch"])
@pytest.mark.parametrize("engine", sorted(engines.ENGINES))
@pytest.mark.parametrize("path", scenarios.scenario_files(), ids=lambda p: p.stem)
def test_scenario(path, engine, max_batch_events, mysql_db, tmp_path):
    database, _ = mysql_db
    run = scenarios.prepare(path, database, tmp_path, max_batch_events)
    engines.ENGINES[engine](run)
    raw = pymysql.connect(**stack.MYSQL, conv={})  # text protocol values, unconverted
    try:
        scenarios.assert_matches(run.scenario, scenarios.table_state(raw, database))
    finally:
        raw.close()
