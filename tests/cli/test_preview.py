"""mongo2mysql preview: documents and change events in, the SQL apply would run out, no server."""
import subprocess

import scenarios
import stack


def preview(stdin, *args):
    return subprocess.run([str(stack.BINARY), "preview", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_documents_give_the_ddl_and_upserts_apply_would_run():
    result = preview('{"_id": 1, "name": "Ann", "address": {"city": "Paris"}, "items": [{"sku": "a", "qty": 2}]}\n',
                     "--collection", "orders")
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "CREATE TABLE IF NOT EXISTS `orders` (`_id` BIGINT NOT NULL" in sql
    assert "`address_city` VARCHAR" in sql
    assert "CREATE TABLE IF NOT EXISTS `orders_items`" in sql
    assert "INSERT INTO `orders` (`_id`,`name`,`address_city`) VALUES (1,'Ann','Paris')" in sql
    assert "INSERT INTO `orders_items` (`_id`,`_idx1`,`sku`,`qty`) VALUES (1,0,'a',2)" in sql


def test_change_events_in_the_kafka_format_are_coalesced_per_key():
    events = [{"op": "insert", "collection": "c", "document": '{"_id": 7, "a": 1, "b": "x"}'},
              {"op": "update", "collection": "c", "key": '{"_id": 7}', "updated": '{"a": 2}', "removed": ["b"]},
              {"op": "delete", "collection": "c", "key": '{"_id": 8}'}]
    lines = "\n".join(scenarios.encode(e, "p", i + 1)[2].decode() for i, e in enumerate(events)) + "\n"
    result = preview(lines)
    assert result.returncode == 0, result.stderr
    assert "DELETE FROM `c` WHERE `_id` IN (8)" in result.stdout
    # The insert and the later delta of _id 7 become one upsert of the latest state: b removed.
    assert "INSERT INTO `c` (`_id`,`a`,`b`) VALUES (7,2,NULL) ON DUPLICATE KEY UPDATE" in result.stdout


def test_maps_keyed_by_data_and_fields_past_the_limits_are_shown():
    result = preview('{"_id": 1, "tier_and_details": {"0df078f33aa74a2e9696e0520c1a828a": {"tier": "Bronze"}}, '
                     '"name": {"en": "Ann"}, "f1": 1, "f2": 2, "f3": 3, "f4": 4, "f5": {"x": [5]}}\n',
                     "--collection", "customers", "--max-columns", "8")
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "`tier_and_details` JSON NULL" in sql
    assert "`name_en` VARCHAR(255)" in sql
    assert "`_overflow` JSON NULL COMMENT 'json #overflow'" in sql
    # _id, tier_and_details, name_en, f1..f4 and _overflow make the 8 columns: f5 is in the overflow.
    assert "VALUES (1,'{\\\"0df078f33aa74a2e9696e0520c1a828a\\\":{\\\"tier\\\":\\\"Bronze\\\"}}','Ann',1,2,3,4,'{\\\"f5\\\":{\\\"x\\\":[5]}}')" in sql, sql


def test_bad_input_is_an_error_naming_the_line():
    result = preview('{"_id": 1}\n{"_id": \n')
    assert result.returncode == 2
    assert "input item 2: invalid Extended JSON" in result.stderr, result.stderr
