package m2m.spark;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a task needs to open a run of the C++ apply core (spark/jvm/m2m_jni.cc): the library's path on the
 * executors and the core's settings. Shipped to the executors with the task, so the MySQL password travels in
 * Spark's task closures, as a JDBC sink's does.
 */
public final class CoreSettings implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String library;
  private final String[] settings;
  private final int maxBatchEvents;
  private final long maxBatchBytes;
  private final int retryForSeconds;
  private final String logLevel;

  /**
   * @param library absolute path of libm2m_jni.so on the executors
   * @param settings the core's settings (spark/native/host_options.h)
   * @param maxBatchEvents a transaction commits after this many records...
   * @param maxBatchBytes ...or this many bytes of records
   * @param retryForSeconds how long retriable failures are retried
   * @param logLevel spdlog level of the core's log lines
   */
  public CoreSettings(String library, Map<String, String> settings, int maxBatchEvents, long maxBatchBytes,
                      int retryForSeconds, String logLevel) {
    this.library = library;
    ArrayList<String> flat = new ArrayList<>();
    for (Map.Entry<String, String> e : new TreeMap<>(settings).entrySet()) {
      flat.add(e.getKey());
      flat.add(e.getValue());
    }
    this.settings = flat.toArray(new String[0]);
    this.maxBatchEvents = maxBatchEvents;
    this.maxBatchBytes = maxBatchBytes;
    this.retryForSeconds = retryForSeconds;
    this.logLevel = logLevel;
  }

  /** A run of Real-time Mode's task: commits once its oldest record has waited maxBatchMs. */
  long openStream(int maxBatchMs) {
    Core.load(library);
    return Core.open(settings, "", maxBatchEvents, maxBatchBytes, maxBatchMs, retryForSeconds, logLevel);
  }

  /** A run of a micro-batch task's partitions, each stopping before its first barrier not in `release`. */
  long openRange(String release) {
    Core.load(library);
    return Core.open(settings, release, maxBatchEvents, maxBatchBytes, -1, retryForSeconds, logLevel);
  }
}
