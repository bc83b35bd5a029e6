package m2m.spark;

import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.sql.ForeachWriter;
import org.apache.spark.sql.Row;

/**
 * The sink of the Spark job's Real-time Mode (docs/spark.md, "Real-time Mode"): moves each Kafka record's bytes
 * (rows of topic, partition, offset, key, value, timestamp, in that order) to the C++ apply core, which maps and
 * commits them (spark/jvm/m2m_jni.cc). Nothing else happens here.
 *
 * <p>Spark makes one copy of the writer per task and epoch and calls it from the task's thread only.
 */
public final class RealtimeWriter extends ForeachWriter<Row> {
  private static final long serialVersionUID = 1L;

  private final String library;
  private final String[] settings;
  private final int maxBatchEvents;
  private final long maxBatchBytes;
  private final int maxBatchMs;
  private final int retryForSeconds;
  private final String logLevel;
  private transient long run;

  /**
   * @param library absolute path of libm2m_jni.so on the executors
   * @param settings the core's settings (spark/native/host_options.h)
   */
  public RealtimeWriter(String library, Map<String, String> settings, int maxBatchEvents, long maxBatchBytes,
                        int maxBatchMs, int retryForSeconds, String logLevel) {
    this.library = library;
    ArrayList<String> flat = new ArrayList<>();
    for (Map.Entry<String, String> e : new TreeMap<>(settings).entrySet()) {
      flat.add(e.getKey());
      flat.add(e.getValue());
    }
    this.settings = flat.toArray(new String[0]);
    this.maxBatchEvents = maxBatchEvents;
    this.maxBatchBytes = maxBatchBytes;
    this.maxBatchMs = maxBatchMs;
    this.retryForSeconds = retryForSeconds;
    this.logLevel = logLevel;
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    // Epoch ids play no part: the core skips what MySQL's stored offsets say was applied.
    Core.load(library);
    run = Core.open(settings, maxBatchEvents, maxBatchBytes, maxBatchMs, retryForSeconds, logLevel);
    return true;
  }

  @Override
  public void process(Row row) {
    Timestamp ts = row.getTimestamp(5);
    String held = Core.process(run, row.getString(0), row.getInt(1), row.getLong(2), (byte[]) row.get(3),
                               (byte[]) row.get(4), ts == null ? 0 : ts.getTime());
    if (held != null) {
      throw new BarrierHeld(held);
    }
  }

  @Override
  public void close(Throwable error) {
    long r = run;
    run = 0;
    if (r != 0) {
      Core.close(r, error == null);
    }
  }
}
