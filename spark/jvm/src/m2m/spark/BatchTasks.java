package m2m.spark;

import java.util.Collections;
import java.util.Iterator;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;

/**
 * A round of a micro-batch (docs/spark.md, "How a micro-batch is applied"): each task hands the records of its
 * whole Kafka partitions to the C++ apply core (spark/jvm/m2m_jni.cc), which applies each partition up to the end
 * of its range or to its first barrier the round does not release, and returns one outcome line per partition to
 * the driver (m2m_spark/writer.py, which orders the barriers across rounds). No Python runs on the executors.
 */
public final class BatchTasks implements MapPartitionsFunction<Row, String> {
  private static final long serialVersionUID = 1L;

  // How much of a task's records its Kafka reader may hold ahead of the core (ReadAhead).
  private static final long READ_AHEAD_BYTES = 16L << 20;

  private final CoreSettings core;
  private final String release;

  /** The job's tasks, releasing no barrier. */
  public BatchTasks(CoreSettings core) {
    this(core, "");
  }

  private BatchTasks(CoreSettings core, String release) {
    this.core = core;
    this.release = release;
  }

  /**
   * Runs one round over a micro-batch of Spark's Kafka source, its Kafka partitions whole in at most `tasks` tasks
   * (coalesce never splits one, and keeps each one's order); returns the tasks' outcome lines.
   *
   * @param release the barriers this round may apply (m2m_spark/core.py's lines)
   */
  public String round(Dataset<Row> batch, int tasks, String release) {
    Dataset<Row> records = batch.select("topic", "partition", "offset", "key", "value", "timestamp").coalesce(tasks);
    return String.join("", records.mapPartitions(new BatchTasks(core, release), Encoders.STRING()).collectAsList());
  }

  @Override
  public Iterator<String> call(Iterator<Row> rows) {
    long run = core.openRange(release);
    boolean finished = false;
    try (ReadAhead records = new ReadAhead(rows, READ_AHEAD_BYTES)) {
      while (records.hasNext()) {
        Core.process(run, records.next());
      }
      String outcome = Core.finish(run);
      finished = true;
      return Collections.singletonList(outcome).iterator();
    } finally {
      Core.close(run, finished);
    }
  }
}
