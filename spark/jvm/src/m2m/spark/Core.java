package m2m.spark;

import java.io.File;
import java.sql.Timestamp;
import org.apache.spark.SparkFiles;
import org.apache.spark.sql.Row;

/** The C++ apply core in this JVM (libm2m_jni, spark/jvm/m2m_jni.cc). */
final class Core {
  private static String loaded;

  private Core() {}

  /**
   * Loads the library once per JVM; every task of a job names the same file: a path on every node (a checkout or
   * the wheel at the same path everywhere), or the name of a file spark-submit's --files shipped to the executors.
   */
  static synchronized void load(String library) {
    if (loaded == null) {
      File file = new File(library);
      System.load(file.isAbsolute() ? library : SparkFiles.get(library));
      loaded = library;
    } else if (!loaded.equals(library)) {
      throw new IllegalStateException("libm2m_jni is loaded from " + loaded + ", not " + library);
    }
  }

  /**
   * A run of one task's records; settings are keys and values alternately (spark/native/host_options.h).
   * maxBatchMs at least 0: a run of Real-time Mode, which commits once its oldest record has waited that long and
   * stops at the first barrier; -1: a run of a micro-batch task, whose partitions each stop before their first
   * barrier not named in `release` (lines of the barriers' keys: m2m_spark/core.py) and commit when finished.
   */
  static native long open(String[] settings, String release, int maxBatchEvents, long maxBatchBytes, int maxBatchMs,
                          int retryForSeconds, String logLevel);

  /** Applies a record, or returns the barrier it is when a Real-time Mode run stopped before it. */
  static native String process(long run, String topic, int partition, long offset, byte[] key, byte[] value,
                               long timestampMs);

  /** A row of Spark's Kafka source (topic, partition, offset, key, value, timestamp) to process(). */
  static String process(long run, Row row) {
    Timestamp ts = row.getTimestamp(5);
    return process(run, row.getString(0), row.getInt(1), row.getLong(2), (byte[]) row.get(3), (byte[]) row.get(4),
                   ts == null ? 0 : ts.getTime());
  }

  /** Commits what remains of a micro-batch task's run; its outcome, a line per partition (m2m_spark/core.py). */
  static native String finish(long run);

  /** Commits what remains (commit) or drops it, and frees the run. */
  static native void close(long run, boolean commit);
}
