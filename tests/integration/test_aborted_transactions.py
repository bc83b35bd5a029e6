"""Records of a Kafka transaction that capture aborted (what a crash leaves behind) never reach
MySQL, whichever engine applies the topic.

The aborted record must really be in the log: a producer aborting a transaction purges what it has
not sent yet, so without a flush before the abort the topic holds only an abort marker and the test
passes even for a consumer that reads uncommitted records."""
import pymysql
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
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
    sent = []

    def send(ordinal, _id, commit):
        _, key, value = scenarios.encode({"op": "insert", "collection": "t", "document": f'{{"_id": {_id}}}'},
                                         prefix, ordinal)
        producer.begin_transaction()
        producer.produce(topic, key=key, value=value)
        sent.append(value)
        assert producer.flush(30) == 0  # on the broker before the abort, which would purge it
        producer.commit_transaction(30) if commit else producer.abort_transaction(30)

    send(1, 1, commit=True)
    send(2, 666, commit=False)
    send(3, 2, commit=True)
    assert _uncommitted_values(topic) == sent  # the aborted record is in the log
    run = scenarios.ScenarioRun({}, prefix, [topic], database, stack.unique("g"), None, None, tmp_path)
    engines.ENGINES[engine](run)
    conn = pymysql.connect(**stack.MYSQL, database=database)
    with conn.cursor() as cur:
        cur.execute("SELECT _id FROM t ORDER BY _id")
        assert [r[0] for r in cur.fetchall()] == [1, 2]
    conn.close()



def _uncommitted_values(topic):
    """The values of the topic's three records, the aborted one included."""
    consumer = Consumer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP, "group.id": stack.unique("g"),
                         "isolation.level": "read_uncommitted", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []

    def three():
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            values.append(m.value())
        return len(values) >= 3
    try:
        stack.wait_for(three, timeout=60, what="the topic's three records")
    finally:
        consumer.close()
    return values
