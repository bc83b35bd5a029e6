import sys
from pathlib import Path

import pymongo
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spark"))
import stack  # noqa: E402


@pytest.fixture(scope="session")
def mongo():
    client = pymongo.MongoClient(stack.MONGO_URI, serverSelectionTimeoutMS=10000)
    yield client
    client.close()


@pytest.fixture
def mongo_db(mongo):
    """A database of the test's own, dropped afterwards."""
    name = stack.unique("t")
    yield mongo[name]
    mongo.drop_database(name)


@pytest.fixture
def mysql_db():
    """A MySQL database of the test's own; yields (name, connection). Dropped afterwards."""
    with stack.own_mysql_database() as database:
        yield database


@pytest.fixture
def kafka_topic():
    """Makes topics of the test's own; deleted afterwards. Call it with partitions=N."""
    admin = AdminClient({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
    made = []

    def make(partitions=1, prefix="t"):
        name = stack.unique(prefix)
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(60)
        made.append(name)
        return name

    yield make
    if made:
        for f in admin.delete_topics(made).values():
            f.result(60)


@pytest.fixture(scope="session")
def spark():
    from m2m_spark.session import build_session

    session = build_session("mongo2mysql-tests")
    yield session
    session.stop()
