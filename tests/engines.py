"""The two sinks that must give the same MySQL state for the same events: the native apply engine
(build/mongo2mysql apply) and the Spark job. Each runs in its "until caught up" mode: apply every
event present in the topics, then exit."""
import os
import subprocess

import stack


def native(run):
    args = [str(stack.BINARY), "apply", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
            "--topics", ",".join(run.topics), "--group", run.group,
            "--mysql-host", stack.MYSQL["host"], "--mysql-port", str(stack.MYSQL["port"]),
            "--mysql-user", stack.MYSQL["user"], "--mysql-database", run.mysql_database, "--until-caught-up"]
    if run.mapping_file:
        args += ["--mapping", str(run.mapping_file)]
    if run.max_batch_events:
        args += ["--max-batch-events", str(run.max_batch_events)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "M2M_MYSQL_PASSWORD": stack.MYSQL["password"]})
    assert result.returncode == 0, f"apply exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


ENGINES = {"native": native}


def spark(run, extra=()):
    """The Spark job in-process, in its availableNow mode, on one SparkSession shared by every
    scenario (a session takes seconds to start; the job itself keeps no state in it). extra: more
    command-line options of the job. Records lost in Kafka raise m2m_spark.lost.KafkaDataLost."""
    from m2m_spark import job
    from m2m_spark.session import build_session

    args = job.parse_args(["--kafka-bootstrap", stack.KAFKA_BOOTSTRAP, "--topics", ",".join(run.topics),
                           "--mysql-database", run.mysql_database, "--until-caught-up", *extra]
                          + (["--max-batch-events", str(run.max_batch_events)] if run.max_batch_events else []))
    if run.mapping_file:
        args.mapping = str(run.mapping_file)
    mysql = {**stack.MYSQL, "database": run.mysql_database}
    query = job.start(build_session("mongo2mysql-tests"), args, run.group, str(run.workdir / "checkpoint"), mysql)
    job.wait(query, 600)
    assert query.exception() is None, query.exception()
    return query


ENGINES["spark"] = spark
