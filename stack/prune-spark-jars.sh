#!/usr/bin/env bash
# prune-spark-jars.sh JARS PYSPARK_JARS: removes from the folder JARS (Spark's Kafka connector and its
# dependencies, as Maven fetched them) every jar whose artifact pyspark already ships in PYSPARK_JARS,
# in whatever version. pyspark's own copy is on the classpath first; a second one passed through
# spark.jars invites class-version clashes, so only what pyspark lacks stays (the connector and the
# Kafka client). Used by stack/install.sh and deploy/docker/Dockerfile.spark.
set -euo pipefail
jars=$1 pyjars=$2
for jar in "$jars"/*.jar; do
  artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9]+)?\.jar$//')
  if compgen -G "$pyjars/$artifact-[0-9]*.jar" > /dev/null; then rm -f "$jar"; fi
done
