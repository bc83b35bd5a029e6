package m2m.spark;

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

  private final CoreSettings core;
  private final int maxBatchMs;
  private transient long run;

  /** @param maxBatchMs a task commits once its oldest record has waited this long */
  public RealtimeWriter(CoreSettings core, int maxBatchMs) {
    this.core = core;
    this.maxBatchMs = maxBatchMs;
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    // Epoch ids play no part: the core skips what MySQL's stored offsets say was applied.
    run = core.openStream(maxBatchMs);
    return true;
  }

  @Override
  public void process(Row row) {
    String held = Core.process(run, row);
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
