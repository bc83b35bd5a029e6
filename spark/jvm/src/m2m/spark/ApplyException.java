package m2m.spark;

/** The apply core failed (the message is its Status); Spark fails the task, and a retry skips what was applied. */
public final class ApplyException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ApplyException(String message) {
    super(message);
  }
}
