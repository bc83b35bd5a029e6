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


def test_bad_input_is_an_error_naming_the_line():
    result = preview('{"_id": 1}\n{"_id": \n')
    assert result.returncode == 2
    assert "input item 2: invalid Extended JSON" in result.stderr, result.stderr
