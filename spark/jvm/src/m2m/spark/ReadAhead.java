package m2m.spark;

import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.Row;

/**
 * A task's records read from Kafka on a thread of their own while the task's thread hands the ones before them to
 * the C++ core: Spark's Kafka source polls the broker synchronously (a poll and two offset look-ups per poll), so
 * without it a task alternates between waiting for Kafka and applying (docs/spark.md, "How a micro-batch is
 * applied"). The thread runs in the task's TaskContext, as PySpark's own input writer thread did, and holds at most
 * maxBytes of records' keys and values (and at least one record) ahead of the task.
 *
 * <p>Thread safety: one consumer thread (the task's), one reader thread (this class's).
 */
final class ReadAhead implements Iterator<Row>, AutoCloseable {
  private final long maxBytes;
  private final ArrayDeque<Row> queue = new ArrayDeque<>();
  private final Thread reader;
  private long queuedBytes;
  private boolean ended;
  private Throwable failure;
  private boolean closed;

  ReadAhead(Iterator<Row> rows, long maxBytes) {
    this.maxBytes = maxBytes;
    TaskContext context = TaskContext.get();
    reader = new Thread(() -> TaskContext.withTaskContext(context, () -> {
      read(rows);
      return null;
    }), "m2m read-ahead " + (context == null ? "" : context.taskAttemptId()));
    reader.setDaemon(true);
    reader.start();
  }

  private void read(Iterator<Row> rows) {
    try {
      while (rows.hasNext()) {
        Row row = rows.next();
        long size = size(row);
        synchronized (this) {
          while (!closed && queuedBytes > 0 && queuedBytes + size > maxBytes) {
            wait();
          }
          if (closed) {
            return;
          }
          queue.addLast(row);
          queuedBytes += size;
          notifyAll();
        }
      }
    } catch (InterruptedException e) {
      return;  // closed
    } catch (Throwable e) {  // the task's failure: Kafka's, lost records...
      synchronized (this) {
        failure = e;
      }
    }
    synchronized (this) {
      ended = true;
      notifyAll();
    }
  }

  private static long size(Row row) {
    byte[] key = (byte[]) row.get(3);
    byte[] value = (byte[]) row.get(4);
    return (key == null ? 0 : key.length) + (value == null ? 0 : value.length);
  }

  @Override
  public synchronized boolean hasNext() {
    while (queue.isEmpty() && !ended) {
      try {
        wait();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("the task was interrupted", e);
      }
    }
    if (queue.isEmpty() && failure != null) {
      sneakyThrow(failure);
    }
    return !queue.isEmpty();
  }

  @Override
  public synchronized Row next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    Row row = queue.removeFirst();
    queuedBytes -= size(row);
    notifyAll();
    return row;
  }

  /** Stops the reader (the task ended, or failed) and waits for it. */
  @Override
  public void close() {
    synchronized (this) {
      closed = true;
      notifyAll();
    }
    reader.interrupt();
    try {
      reader.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @SuppressWarnings("unchecked")
  private static <E extends Throwable> void sneakyThrow(Throwable e) throws E {
    throw (E) e;
  }
}
