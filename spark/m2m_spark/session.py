"""Builds the SparkSession every mongo2mysql Spark job and test uses.

Spark's own download of its Kafka connector (spark.jars.packages, through Ivy) may not reach a
registry, so the connector jars come from Maven through stack/install.sh and are passed here with
spark.jars, with the job's own (spark/jvm). On a cluster, spark-submit supplies the master and the same jars (README: "Spark")."""
import glob
import os
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]
# The checkout the package runs from (<root>/spark/m2m_spark), or None when it runs installed from the
# wheel (site-packages/m2m_spark) or from spark-submit's zip.
CHECKOUT = _PACKAGE_PARENT.parent if (_PACKAGE_PARENT.parent / "spark" / "native").is_dir() else None


def state_folder() -> Path:
    """The local stack's state: M2M_STATE, else the checkout's .stack, else ./.stack."""
    return Path(os.environ.get("M2M_STATE", (CHECKOUT or Path.cwd()) / ".stack"))


def connector_jars() -> list[str]:
    """The Kafka connector jars fetched by stack/install.sh (M2M_SPARK_JARS overrides the folder)."""
    folder = os.environ.get("M2M_SPARK_JARS") or str(state_folder() / "jars" / "spark")
    jars = sorted(glob.glob(os.path.join(folder, "*.jar")))
    if not any("spark-sql-kafka" in j for j in jars):
        raise RuntimeError(f"no spark-sql-kafka jar in {folder}; run stack/install.sh (or make up)")
    return jars


def jvm_build() -> tuple[str, str] | None:
    """The job's JVM classes (m2m-spark.jar) and the C++ apply core they load (libm2m_jni.so), which
    the executors run (spark/jvm, built by `make` into build/jvm or $M2M_BUILD/jvm; installed from the
    wheel, the package's jvm/ folder), when built (docs/spark.md, "On a cluster")."""
    folder = CHECKOUT / os.environ.get("M2M_BUILD", "build") / "jvm" if CHECKOUT else Path(__file__).resolve().parent / "jvm"
    jar, library = folder / "m2m-spark.jar", folder / "libm2m_jni.so"
    return (str(jar), str(library)) if jar.is_file() and library.is_file() else None


SHIPPED_LIBRARY = "libm2m_jni.so"


def executor_library(spark: SparkSession) -> str | None:
    """Where the executors load the C++ core from: the build's or the wheel's libm2m_jni.so, a path that
    must be the same on every node (a checkout, or the wheel installed at the same path everywhere);
    else the file of that name that spark-submit's --files ships to the executors (its name: the JVM
    classes look it up with SparkFiles); else None (docs/spark.md, "On a cluster")."""
    if jvm_build():
        return jvm_build()[1]
    shipped = spark.sparkContext.getConf().get("spark.files", "") or ""
    return SHIPPED_LIBRARY if any(Path(urlparse(f).path).name == SHIPPED_LIBRARY for f in shipped.split(",")) else None


def build_session(app_name: str, master: str | None = None) -> SparkSession:
    """The session of a job, test or benchmark. Master: `master`, else M2M_SPARK_MASTER, else the
    one spark-submit configured (`--master`, spark-defaults.conf), else local[2]. Its jars: the Kafka
    connector's and the job's own (jvm_build), for the driver and the executors."""
    master = master or os.environ.get("M2M_SPARK_MASTER")
    # Under spark-submit the JVM is already running with its master and PySpark attaches to it
    # through PYSPARK_GATEWAY_PORT; started here, Spark's own default would be local[*], too many
    # threads for a shared machine.
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        master = "local[2]"
    jars = connector_jars() + ([jvm_build()[0]] if jvm_build() else [])
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # spark.jars set here replaces spark-submit's --jars, which may be the only way the job's jar
        # reaches the executors (README, "Spark"): keep them.
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # attaches to spark-submit's JVM, whose SparkConf has them
        jars += [j for j in (SparkConf().get("spark.jars", "") or "").split(",") if j and j not in jars]
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    builder = (
        builder.config("spark.jars", ",".join(jars))
        # Small machine, small batches: Spark's defaults (200 shuffle partitions, the web UI) only
        # cost time here.
        .config("spark.sql.shuffle.partitions", os.environ.get("M2M_SPARK_SHUFFLE_PARTITIONS", "2"))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", os.environ.get("M2M_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.sql.session.timeZone", "UTC")
        # A task retried after its worker died must find MySQL's offsets, not a second copy of
        # the work: the core skips what is applied. Speculative copies would only wait on locks.
        .config("spark.speculation", "false")
        # The Kafka source asks for each task to run where its partition's consumer is cached, and
        # Spark holds a task up to spark.locality.wait (3 s) for such a slot: in every micro-batch,
        # most of the latency (bench/latency_bench.py, Spark at 500 writes/s: p50 8.5 s -> 2.4 s).
        .config("spark.locality.wait", "0s")
        # The Kafka source's V1 implementation. The V2 one (MicroBatchStream) of Spark 4.1.1 fails
        # with a NullPointerException in its metrics when a restarted query replays the batch the
        # previous run did not commit, i.e. after every crash mid-batch (SPARK-57438). V1 reads the
        # same options and the same checkpointed offsets.
        .config("spark.sql.streaming.disabledV2MicroBatchReaders",
                "org.apache.spark.sql.kafka010.KafkaSourceProvider")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("M2M_SPARK_LOG_LEVEL", "WARN"))
    return session


CHECKPOINT_MANAGER = "spark.sql.streaming.checkpointFileManagerClass"
FILE_SYSTEM_CHECKPOINTS = "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"


def checkpoint_manager(checkpoint: str, default_fs: str, chosen: str | None) -> str | None:
    """The checkpoint manager class the job sets for a checkpoint folder, or None to leave Spark's.

    Spark's default manager goes through Hadoop's FileContext API, which on a local file system
    starts a `readlink` process for each file it renames and a `chmod` for each it creates, unless
    Hadoop's native library is installed (pyspark's and Spark's own downloads have none): about ten
    processes a micro-batch from the driver's JVM, most of the offset and commit logs' time (75 -> 21
    ms a batch on an idle machine, more under load: docs/spark.md "Latency"). The manager on Hadoop's
    FileSystem API does the same writes and renames in Java; its rename is no less atomic on a local
    disk, where FileContext's is a check and a rename too. HDFS and object stores keep Spark's
    choice, and so does a manager the user chose (`chosen`). default_fs: Hadoop's fs.defaultFS, where
    a folder without a scheme is."""
    if chosen:
        return None
    return FILE_SYSTEM_CHECKPOINTS if (urlparse(checkpoint).scheme or urlparse(default_fs).scheme) == "file" else None


def use_checkpoint_manager(spark: SparkSession, checkpoint: str) -> None:
    """Sets checkpoint_manager's choice in the session, for the queries it starts next."""
    chosen = checkpoint_manager(checkpoint, spark._jsc.hadoopConfiguration().get("fs.defaultFS", "file:///"),
                                spark.conf.get(CHECKPOINT_MANAGER, None))
    if chosen:
        spark.conf.set(CHECKPOINT_MANAGER, chosen)
