"""Records of a Kafka transaction that capture aborted (what a crash leaves behind) never reach
MySQL, whichever engine applies the topic."""
import pymysql
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import engines
import scenarios
import stack


@pytest.mark.parametrize("engine", sorted(engines.ENGINES))
def test_aborted_records_are_never_applied(engine, mysql_db, tmp_path):
    database, _ = mysql_db
    prefix = stack.unique("ab")
    topic = f"{prefix}.test.t"
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "transactional.id": stack.unique("tx")})
    producer.init_transactions(30)

    def send(ordinal, _id, commit):
        _, key, value = scenarios.encode({"op": "insert", "collection": "t", "document": f'{{"_id": {_id}}}'},
                                         prefix, ordinal)
        producer.begin_transaction()
        producer.produce(topic, key=key, value=value)
        producer.commit_transaction(30) if commit else producer.abort_transaction(30)

    send(1, 1, commit=True)
    send(2, 666, commit=False)
    send(3, 2, commit=True)
    run = scenarios.ScenarioRun({}, prefix, [topic], database, stack.unique("g"), None, None, tmp_path)
    engines.ENGINES[engine](run)
    conn = pymysql.connect(**stack.MYSQL, database=database)
    with conn.cursor() as cur:
        cur.execute("SELECT _id FROM t ORDER BY _id")
        assert [r[0] for r in cur.fetchall()] == [1, 2]
    conn.close()
