"""mongo2mysql's Spark engine: the PySpark Structured Streaming job (see spark/README.md)."""
