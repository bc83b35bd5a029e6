"""What the Spark job does to keep Spark's own work per micro-batch short (docs/spark.md, "Latency"):
its Python workers do not re-read Spark's zip archives before every task, and its checkpoint logs on
a local disk go through Hadoop's FileSystem API, which starts no process per file. Pure logic, no
servers."""
import importlib
import sys
import zipfile
import zipimport

import pytest

from m2m_spark import zip_imports
from m2m_spark.session import FILE_SYSTEM_CHECKPOINTS, checkpoint_manager


def write_zip(path, modules):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("zpkg_m2m/__init__.py", "")
        for name, text in modules.items():
            z.writestr(f"zpkg_m2m/{name}.py", text)


def test_a_zip_archive_is_read_again_only_once_it_changed(tmp_path, monkeypatch):
    archive = tmp_path / "lib.zip"
    write_zip(archive, {"a": "VALUE = 1\n"})
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", zipimport.zipimporter.invalidate_caches)
    for name in [m for m in sys.modules if m.startswith("zpkg_m2m")]:
        monkeypatch.delitem(sys.modules, name)
    reads = []
    read_directory = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda p: reads.append(p) or read_directory(p))

    zip_imports.install()
    assert importlib.import_module("zpkg_m2m.a").VALUE == 1
    importlib.invalidate_caches()  # the stamp of each importer is taken
    reads.clear()
    for _ in range(3):  # what a Python worker does before each task
        importlib.invalidate_caches()
    assert str(archive) not in reads

    write_zip(archive, {"a": "VALUE = 1\n", "b": "VALUE = 2\n"})
    importlib.invalidate_caches()
    assert str(archive) in reads
    assert importlib.import_module("zpkg_m2m.b").VALUE == 2


@pytest.mark.parametrize("checkpoint,default_fs,chosen,expected", [
    ("/var/lib/m2m/checkpoints/shop", "file:///", None, FILE_SYSTEM_CHECKPOINTS),
    ("file:///var/lib/m2m/checkpoints/shop", "hdfs://nn:8020", None, FILE_SYSTEM_CHECKPOINTS),
    ("relative/checkpoint", "file:///", None, FILE_SYSTEM_CHECKPOINTS),
    ("/m2m/checkpoints/shop", "hdfs://nn:8020", None, None),
    ("hdfs:///m2m/checkpoints/shop", "file:///", None, None),
    ("s3a://bucket/checkpoints/shop", "file:///", None, None),
    ("/var/lib/m2m/checkpoints/shop", "file:///", "com.example.MyCheckpointFileManager", None),
], ids=["local", "file-scheme", "relative", "hdfs-default", "hdfs", "s3a", "user-chosen"])
def test_checkpoints_on_a_local_disk_use_the_file_system_api(checkpoint, default_fs, chosen, expected):
    assert checkpoint_manager(checkpoint, default_fs, chosen) == expected
