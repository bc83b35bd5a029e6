"""Keeps PySpark's Python workers from re-reading Spark's zip archives before every task.

A worker calls importlib.invalidate_caches() at the start of each task (pyspark.worker_util's
setup_spark_files), and the workers import pyspark from Spark's pyspark.zip (first on their
PYTHONPATH, on a cluster as in local mode): one zipimport importer per package inside it, each of
which re-reads the whole archive's directory (1,300 entries) on invalidate_caches in Python 3.11
and 3.12. That was 50-80 ms of CPU per task on an idle core here, several times the core's own
work for a small micro-batch (docs/spark.md, "Latency"). An importer now re-reads only an archive
that changed on disk since it last read it, which is all invalidate_caches is for."""
import os
import zipimport

_ORIGINAL = zipimport.zipimporter.invalidate_caches


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _invalidate_caches_if_changed(importer):
    stamp = _stamp(importer.archive)
    if stamp is None or getattr(importer, "_m2m_stamp", None) != stamp:
        _ORIGINAL(importer)
        importer._m2m_stamp = stamp


def install():
    """Idempotent; in the process that imports the job's executor code (core.py)."""
    zipimport.zipimporter.invalidate_caches = _invalidate_caches_if_changed
