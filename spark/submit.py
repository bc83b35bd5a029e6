"""The file to hand to spark-submit (with --py-files m2m_spark.zip): the job's entry point outside
the package, since spark-submit runs a script, not a module."""
import sys

from m2m_spark.job import main

sys.exit(main())
