"""What the Spark job does to keep Spark's own work per micro-batch short (docs/spark.md, "Latency"):
its checkpoint logs on a local disk go through Hadoop's FileSystem API, which starts no process per
file. Pure logic, no servers."""
import pytest

from m2m_spark.session import FILE_SYSTEM_CHECKPOINTS, checkpoint_manager


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
