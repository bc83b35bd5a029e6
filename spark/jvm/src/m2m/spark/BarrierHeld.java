package m2m.spark;

/**
 * A task of Real-time Mode met a barrier (a drop, a rename, the first event of a collection without tables),
 * which only the job's micro-batch rounds can order against the other partitions: it stops the query, and the
 * job applies the barrier in micro-batches before it starts Real-time Mode again (docs/spark.md).
 */
public final class BarrierHeld extends RuntimeException {
  private static final long serialVersionUID = 1L;
  /** What the job looks for in the query's error. */
  public static final String MARK = "m2m barrier held:";

  public BarrierHeld(String barrier) {
    super(MARK + " " + barrier);
  }
}
