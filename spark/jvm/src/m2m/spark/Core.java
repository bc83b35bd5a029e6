package m2m.spark;

/** The C++ apply core in this JVM (libm2m_jni, spark/jvm/m2m_jni.cc). */
final class Core {
  private static String loaded;

  private Core() {}

  /** Loads the library once per JVM; every writer of a job names the same file. */
  static synchronized void load(String library) {
    if (loaded == null) {
      System.load(library);
      loaded = library;
    } else if (!loaded.equals(library)) {
      throw new IllegalStateException("libm2m_jni is loaded from " + loaded + ", not " + library);
    }
  }

  /** A run of one task's records; settings are keys and values alternately (spark/native/host_options.h). */
  static native long open(String[] settings, int maxBatchEvents, long maxBatchBytes, int maxBatchMs,
                          int retryForSeconds, String logLevel);

  /** Applies a record, or returns the barrier it is (then nothing more of the run is applied). */
  static native String process(long run, String topic, int partition, long offset, byte[] key, byte[] value,
                               long timestampMs);

  /** Commits what remains (commit) or drops it, and frees the run. */
  static native void close(long run, boolean commit);
}
