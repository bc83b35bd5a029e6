// An oplog for the MongoDB stand-in whose change events have the shape real MongoDB (5.0-8.0) gives:
// ns, documentKey {_id}, update with updateDescription, replace, drop followed by invalidate,
// dropDatabase, wallTime, at collection, database (aggregate: 1) and deployment (admin,
// allChangesForCluster) scope. mongo-java-server's own oplog returns simplified events (no ns, the
// update spec as documentKey, replace as update, collection streams only); code written to the real
// format would reject those, and the product must never be bent to them. This class is test
// infrastructure only.
//
// Like a replica set's oplog it is capped (maxBytes, maxEvents): the oldest entries are removed, and a
// stream whose resume point lies before what was removed fails as MongoDB fails it, with
// ChangeStreamHistoryLost (286). Without the cap the stand-in's data file grew with every test run.
//
// Pre-images (fullDocumentBeforeChange) are answered from the oplog itself: the document's state
// after its previous entry, as if every collection had changeStreamPreAndPostImages enabled; null
// (whenAvailable) or error 47 NoMatchingDocument (required) when that entry is gone or was a delete.
//
// Every change-stream batch carries postBatchResumeToken, as from MongoDB 4.0.7 on.
//
// A stream whose pipeline ends with $changeStreamSplitLargeEvent (MongoDB 7.0+; the launcher takes
// the stage out of the pipeline, takeSplitLargeEventStage) gets each event larger than maxEventBytes
// as fragments in the real shape: top-level fields in order, as many per fragment as fit, each
// fragment with splitEvent {fragment, of} and a resume token of its own, from which a stream resumes
// at the next fragment. With the size set explicitly, streams without the stage fail on such an
// event with BSONObjectTooLarge (10334), as MongoDB's do.
//
// Not emulated (tests cover them with recorded real events instead): rename, transactions,
// truncatedArrays. A stream that fell behind the cap
// while open fails with 286 on its next getMore; a real server answers CappedPositionLost (136)
// there, and the driver's automatic resume then gets 286. fullDocument "whenAvailable"/"required"
// (post-images) are answered like "updateLookup".
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractCursor;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.exception.MongoServerException;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

final class RealShapeOplog implements Oplog {
  // Databases whose changes no change stream reports.
  private static final Set<String> INTERNAL_DATABASES = Set.of("admin", "config", "local");

  private final MongoBackend backend;
  private final MongoCollection<Document> store;
  // One document, {_id: "truncatedThrough", ts}: the newest entry ever removed, so the answer to an
  // old resume point survives a restart of the server.
  private final MongoCollection<Document> truncation;
  private final CursorRegistry cursors;
  private final Clock clock;
  private final long maxBytes;
  private final long maxEvents;
  // 0: events are not size-checked unless split (measuring each one halves the stand-in's stream rate).
  private final long splitEventBytes;
  private final long maxEventBytes;
  // Every entry of `store`, by timestamp: a poll reads only what follows its position instead of
  // deserializing and sorting the whole oplog.
  private final ConcurrentSkipListMap<Long, Document> byTimestamp = new ConcurrentSkipListMap<>();
  private long bytes;
  private volatile long truncatedThrough = -1;
  private int lastSecond;
  private int increment;

  RealShapeOplog(MongoBackend backend, MongoCollection<Document> store, MongoCollection<Document> truncation,
                 CursorRegistry cursors, Clock clock, long maxBytes, long maxEvents, long splitEventBytes) {
    this.backend = backend;
    this.store = store;
    this.truncation = truncation;
    this.cursors = cursors;
    this.clock = clock;
    this.maxBytes = maxBytes;
    this.maxEvents = maxEvents;
    this.splitEventBytes = splitEventBytes;
    this.maxEventBytes = splitEventBytes > 0 ? splitEventBytes : 16L << 20;
    for (Document state : truncation.queryAll()) truncatedThrough = ((BsonTimestamp) state.get("ts")).getValue();
    // Continue after what an earlier run of the server wrote, so cluster times only grow. An oplog
    // written before the cap existed, or under a larger one, is cut down to the cap while loading.
    List<Document> removed = new ArrayList<>();
    for (Document entry : store.queryAll()) {
      BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
      if (!entry.containsKey("bytes")) entry.put("bytes", sizeOf(entry));
      byTimestamp.put(ts.getValue(), entry);
      bytes += ((Number) entry.get("bytes")).longValue();
      if (ts.getTime() > lastSecond || (ts.getTime() == lastSecond && ts.getInc() > increment)) {
        lastSecond = ts.getTime();
        increment = ts.getInc();
      }
      while (overCap()) removed.add(new Document("_id", removeOldest().get("_id")));
    }
    for (Document id : removed) store.removeDocument(id);
    if (!removed.isEmpty()) persistTruncation();
  }

  private static long sizeOf(Document entry) {
    ByteBuf buffer = Unpooled.buffer();
    try {
      BsonEncoder.encodeDocument(entry, buffer);
      return buffer.writerIndex();
    } finally {
      buffer.release();
    }
  }

  private boolean overCap() {
    return byTimestamp.size() > 1 && ((maxBytes > 0 && bytes > maxBytes) || (maxEvents > 0 && byTimestamp.size() > maxEvents));
  }

  private Document removeOldest() {
    Map.Entry<Long, Document> oldest = byTimestamp.pollFirstEntry();
    bytes -= ((Number) oldest.getValue().get("bytes")).longValue();
    truncatedThrough = oldest.getKey();
    return oldest.getValue();
  }

  private void persistTruncation() {
    for (Document state : truncation.queryAll()) truncation.removeDocument(state);
    truncation.addDocument(new Document("_id", "truncatedThrough").append("ts", new BsonTimestamp(truncatedThrough)));
  }

  private synchronized BsonTimestamp nextTimestamp() {
    int now = (int) clock.instant().getEpochSecond();
    if (now > lastSecond) {
      lastSecond = now;
      increment = 0;
    }
    return new BsonTimestamp(Instant.ofEpochSecond(lastSecond), ++increment);
  }

  // The cluster time of the newest entry, as a replica set member reports it in operationTime; before
  // the first write, the present second.
  synchronized BsonTimestamp lastOperationTime() {
    if (lastSecond == 0) return new BsonTimestamp(clock.instant(), 0);
    return new BsonTimestamp(Instant.ofEpochSecond(lastSecond), increment);
  }

  private static String databaseOf(String namespace) {
    int dot = namespace.indexOf('.');
    return dot < 0 ? namespace : namespace.substring(0, dot);
  }

  private static String collectionOf(String namespace) {
    int dot = namespace.indexOf('.');
    return dot < 0 ? "" : namespace.substring(dot + 1);
  }

  // The oplog itself, and system collections (system.indexes, ...), which change streams never report.
  private boolean ignored(String namespace) {
    return namespace.equals(store.getFullName()) || collectionOf(namespace).startsWith("system.")
        || INTERNAL_DATABASES.contains(databaseOf(namespace));
  }

  private void record(String namespace, Document event) {
    record(namespace, event, null);
  }

  // `after`: the document's state after an update, kept for the pre-image of its next change.
  private synchronized void record(String namespace, Document event, Document after) {
    BsonTimestamp ts = nextTimestamp();
    Document entry = new Document("_id", ts.getValue()).append("ts", ts).append("ns", namespace)
        .append("wall", clock.instant()).append("event", event);
    if (after != null) entry.append("after", after);
    entry.append("bytes", sizeOf(entry));
    store.addDocument(entry);
    byTimestamp.put(ts.getValue(), entry);
    bytes += ((Number) entry.get("bytes")).longValue();
    if (!overCap()) return;
    while (overCap()) store.removeDocument(removeOldest());
    persistTruncation();
  }

  private static Document key(Object id) {
    return new Document("_id", id);
  }

  private Document lookUp(String namespace, Object id) {
    MongoDatabase db = backend.resolveDatabase(databaseOf(namespace));
    MongoCollection<?> collection = db.resolveCollection(collectionOf(namespace), false);
    if (collection == null) return null;
    for (Document d : collection.handleQuery(key(id))) return d.cloneDeeply();
    return null;
  }

  @Override
  public void handleInsert(String namespace, List<Document> documents) {
    if (ignored(namespace)) return;
    for (Document d : documents) {
      record(namespace, new Document("operationType", "insert").append("documentKey", key(d.get("_id")))
          .append("fullDocument", d.cloneDeeply()));
    }
  }

  @Override
  public void handleUpdate(String namespace, Document selector, Document update, List<Object> ids) {
    if (ignored(namespace)) return;
    boolean replace = update.keySet().stream().noneMatch(k -> k.startsWith("$"));
    for (Object id : ids) {
      Document current = lookUp(namespace, id);
      Document event = new Document("operationType", replace ? "replace" : "update").append("documentKey", key(id));
      if (replace) {
        event.append("fullDocument", current);
        record(namespace, event);
      } else {
        record(namespace, event.append("updateDescription", describe(update, current)), current);
      }
    }
  }

  // updatedFields hold the values after the update, read from the updated document. A path with a
  // positional operator ($, $[], $[x]) is reported as its array field as a whole, as MongoDB itself
  // may do for array changes.
  @SuppressWarnings("unchecked")
  private static Document describe(Document update, Document current) {
    Document updated = new Document();
    List<String> removed = new ArrayList<>();
    for (Map.Entry<String, Object> op : update.entrySet()) {
      Document spec = (Document) op.getValue();
      for (Map.Entry<String, Object> field : spec.entrySet()) {
        switch (op.getKey()) {
          case "$unset" -> removed.add(field.getKey());
          case "$rename" -> {
            removed.add(field.getKey());
            String to = (String) field.getValue();
            updated.put(to, valueAt(current, to));
          }
          default -> {
            String path = withoutPositional(field.getKey());
            updated.put(path, valueAt(current, path));
          }
        }
      }
    }
    return new Document("updatedFields", updated).append("removedFields", removed)
        .append("truncatedArrays", new ArrayList<>());
  }

  private static String withoutPositional(String path) {
    String[] parts = path.split("\\.");
    StringBuilder out = new StringBuilder();
    for (String part : parts) {
      if (part.startsWith("$")) break;
      if (out.length() > 0) out.append('.');
      out.append(part);
    }
    return out.toString();
  }

  private static Object valueAt(Document doc, String path) {
    return doc == null ? null : Utils.getSubdocumentValue(doc, path);
  }

  @Override
  public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
    if (ignored(namespace)) return;
    for (Object id : deletedIds) record(namespace, new Document("operationType", "delete").append("documentKey", key(id)));
  }

  @Override
  public void handleDropCollection(String namespace) {
    if (ignored(namespace)) return;
    record(namespace, new Document("operationType", "drop"));
    // A collection's stream ends with invalidate after a drop; it has a resume token of its own.
    // Database and deployment streams go on.
    record(namespace, new Document("operationType", "invalidate"));
  }

  // After the drop of each of its collections (handleDropCollection): dropDatabase, then invalidate
  // for the database's own streams. Deployment streams go on.
  void handleDropDatabase(String database) {
    if (INTERNAL_DATABASES.contains(database)) return;
    record(database + ".", new Document("operationType", "dropDatabase"));
    record(database + ".", new Document("operationType", "invalidate"));
  }

  // What a stream watches: one collection, one database (collection empty) or every database but the
  // internal ones (database empty).
  private record Scope(String database, String collection) {
    static Scope of(String namespace, Document request) {
      String db = databaseOf(namespace);
      String coll = collectionOf(namespace);
      if (!coll.equals("1")) return new Scope(db, coll);  // aggregate: 1 is a database-wide stream
      return db.equals("admin") && Boolean.TRUE.equals(request.get("allChangesForCluster")) ? new Scope("", "") : new Scope(db, "");
    }

    boolean sees(Document entry) {
      String ns = (String) entry.get("ns");
      String db = databaseOf(ns);
      String coll = collectionOf(ns);
      String type = (String) ((Document) entry.get("event")).get("operationType");
      if (type.equals("invalidate")) {
        // The invalidate of a dropped collection (ns db.coll) or database (ns "db.") reaches only the
        // streams on exactly that.
        return db.equals(database) && coll.equals(collection);
      }
      if (database.isEmpty()) return true;
      if (!db.equals(database)) return false;
      if (collection.isEmpty()) return true;
      return coll.equals(collection);
    }
  }

  // Marks the $changeStream stage of an aggregate command whose pipeline ends with
  // $changeStreamSplitLargeEvent (SPLIT_MARK) and takes that stage out, as mongo-java-server's
  // aggregation does not know it. Like MongoDB, refuses it anywhere but last.
  static final String SPLIT_MARK = "$m2mSplitLargeEvent";

  static void takeSplitLargeEventStage(Document command) {
    if (!(command.get("pipeline") instanceof List<?> pipeline) || pipeline.isEmpty()) return;
    if (!(pipeline.get(0) instanceof Document first) || !(first.get("$changeStream") instanceof Document changeStream)) return;
    List<Object> rest = new ArrayList<>(pipeline);
    for (int i = 0; i < rest.size(); i++) {
      if (!(rest.get(i) instanceof Document stage) || !stage.containsKey("$changeStreamSplitLargeEvent")) continue;
      if (i != rest.size() - 1) {
        throw new MongoServerError(7182802, "Location7182802", "$changeStreamSplitLargeEvent can only appear at the end of the pipeline");
      }
      rest.remove(i);
      changeStream.put(SPLIT_MARK, true);
      command.put("pipeline", rest);
      return;
    }
  }

  // A stream position: after the entry of timestamp `ts`, or, when `fragment` > 0, after that
  // fragment of its split event.
  private record Position(long ts, int fragment) {
    static Position of(Document token) {
      String data = (String) token.get("_data");
      return new Position(Long.parseUnsignedLong(data.substring(0, 16), 16),
          data.length() > 16 ? Integer.parseInt(data.substring(16), 16) : 0);
    }

    Document token() {
      return new Document("_data", String.format("%016x", ts) + (fragment > 0 ? String.format("%08x", fragment) : ""));
    }
  }

  @Override
  public Cursor createCursor(Document request, String namespace, Aggregation aggregation) {
    Document token = (Document) (request.containsKey("startAfter") ? request.get("startAfter") : request.get("resumeAfter"));
    Position after;
    if (token != null) {
      after = Position.of(token);
    } else if (request.get("startAtOperationTime") != null) {
      after = new Position(((BsonTimestamp) request.get("startAtOperationTime")).getValue() - 1, 0);  // inclusive
    } else {
      after = new Position(lastOperationTime().getValue(), 0);
    }
    StreamCursor cursor = new StreamCursor(cursors.generateCursorId(), Scope.of(namespace, request), after,
        (String) request.getOrDefault("fullDocument", "default"),
        (String) request.getOrDefault("fullDocumentBeforeChange", "off"), aggregation,
        Boolean.TRUE.equals(request.get(SPLIT_MARK)) ? maxEventBytes : 0);
    cursor.checkReachable();
    cursors.add(cursor);
    return cursor;
  }

  // Adds to a reply of aggregate or getMore on a change stream where the stream stands after the batch
  // (postBatchResumeToken): past the entries it examined, so an idle stream's token still advances.
  void addPostBatchResumeToken(Document reply) {
    if (!(reply.get("cursor") instanceof Document cursor) || !(cursor.get("id") instanceof Number id)) return;
    if (id.longValue() == 0) return;
    try {
      if (cursors.getCursor(id.longValue()) instanceof StreamCursor stream) {
        cursor.put("postBatchResumeToken", stream.after.token());
      }
    } catch (MongoServerException e) {
      // not a cursor of ours, or already closed
    }
  }

  // A change-stream cursor. Its position is the last oplog entry it examined, not the last event it
  // returned, so a stream that is up to date is not lost when entries it skipped are removed.
  private final class StreamCursor extends AbstractCursor {
    private final Scope scope;
    private final String fullDocument;
    private final String beforeChange;
    private final Aggregation aggregation;
    private final long splitBytes;  // 0: events are never split
    private Position after;

    StreamCursor(long id, Scope scope, Position after, String fullDocument, String beforeChange, Aggregation aggregation,
                 long splitBytes) {
      super(id);
      this.scope = scope;
      this.after = after;
      this.fullDocument = fullDocument;
      this.beforeChange = beforeChange;
      this.aggregation = aggregation;
      this.splitBytes = splitBytes;
    }

    // Entries after the position were removed before the stream read them: its history is lost.
    void checkReachable() {
      if (truncatedThrough > after.ts()) {
        throw new MongoServerError(286, "ChangeStreamHistoryLost",
            "Resume of change stream was not possible, as the resume point may no longer be in the oplog.");
      }
    }

    @Override
    public boolean isEmpty() {
      return false;
    }

    @Override
    public List<Document> takeDocuments(int limit) {
      checkReachable();
      long[] examined = {after.ts()};
      // In the middle of a split event: that event again, without the fragments already returned.
      Stream<Document> events = byTimestamp.tailMap(after.ts(), after.fragment() > 0).values().stream()
          .peek(e -> examined[0] = ((BsonTimestamp) e.get("ts")).getValue())
          .filter(scope::sees)
          .map(e -> toChangeEvent(e, fullDocument, beforeChange));
      Stream<Document> out = aggregation.runStagesAsStream(events);
      if (splitBytes > 0) {
        out = out.flatMap(e -> split(e, splitBytes).stream()).skip(after.fragment());
      } else if (splitEventBytes > 0) {
        out = out.peek(RealShapeOplog.this::refuseTooLarge);
      }
      if (limit > 0) out = out.limit(limit);
      List<Document> documents = out.collect(Collectors.toList());
      if (limit > 0 && documents.size() == limit) {
        // A full batch may have examined entries past its last event; continue right after that event
        // (or fragment: a split event's last fragment ends the event).
        Document last = documents.get(documents.size() - 1);
        Position at = Position.of((Document) last.get("_id"));
        boolean whole = !(last.get("splitEvent") instanceof Document split) || split.get("fragment").equals(split.get("of"));
        after = whole ? new Position(at.ts(), 0) : at;
      } else {
        after = new Position(examined[0], 0);
      }
      return documents;
    }
  }

  // An event over the limit fails a stream that does not split events, as MongoDB fails it.
  private void refuseTooLarge(Document event) {
    long size = sizeOf(event);
    if (size > splitEventBytes) {
      throw new MongoServerError(10334, "BSONObjectTooLarge", "BSONObj size: " + size + " is invalid. Size must be "
          + "between 0 and " + splitEventBytes + ". First element: _id: " + event.get("_id"));
    }
  }

  // `event` itself when it fits in `limit` bytes, else its fragments.
  private static List<Document> split(Document event, long limit) {
    if (sizeOf(event) <= limit) return List.of(event);
    List<Document> parts = new ArrayList<>();
    Document part = new Document();
    long used = 0;
    for (Map.Entry<String, Object> field : event.entrySet()) {
      if (field.getKey().equals("_id")) continue;
      long size = sizeOf(new Document(field.getKey(), field.getValue()));
      if (!part.isEmpty() && used + size > limit) {
        parts.add(part);
        part = new Document();
        used = 0;
      }
      part.put(field.getKey(), field.getValue());
      used += size;
    }
    parts.add(part);
    long ts = Position.of((Document) event.get("_id")).ts();
    List<Document> fragments = new ArrayList<>();
    for (int i = 0; i < parts.size(); i++) {
      Document fragment = new Document("_id", new Position(ts, i + 1).token())
          .append("splitEvent", new Document("fragment", i + 1).append("of", parts.size()));
      fragment.putAll(parts.get(i));
      fragments.add(fragment);
    }
    return fragments;
  }

  private Document toChangeEvent(Document entry, String fullDocument, String beforeChange) {
    BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
    String namespace = (String) entry.get("ns");
    Document stored = (Document) entry.get("event");
    String type = (String) stored.get("operationType");
    Document event = new Document("_id", new Position(ts.getValue(), 0).token())
        .append("operationType", type).append("clusterTime", ts).append("wallTime", entry.get("wall"));
    if (type.equals("dropDatabase")) {
      event.append("ns", new Document("db", databaseOf(namespace)));
    } else if (!type.equals("invalidate")) {
      event.append("ns", new Document("db", databaseOf(namespace)).append("coll", collectionOf(namespace)));
    }
    for (Map.Entry<String, Object> field : stored.entrySet()) {
      if (!field.getKey().equals("operationType")) event.append(field.getKey(), field.getValue());
    }
    if (type.equals("update") && !fullDocument.equals("default")) {
      // Looked up when the event is read, as MongoDB does: null when the document is gone by then.
      Document documentKey = (Document) stored.get("documentKey");
      event.append("fullDocument", lookUp(namespace, documentKey.get("_id")));
    }
    if (!beforeChange.equals("off") && Set.of("update", "replace", "delete").contains(type)) {
      Document before = preImage(entry);
      if (before == null && beforeChange.equals("required")) {
        throw new MongoServerError(47, "NoMatchingDocument", "Change stream was configured to require a pre-image "
            + "for all update, delete and replace events, but the pre-image was not found for event: " + event.get("_id"));
      }
      event.append("fullDocumentBeforeChange", before);
    }
    return event;
  }

  // The document's state before `entry`: after the newest earlier entry of the same document, unless
  // that was its delete or the oplog no longer holds one.
  private Document preImage(Document entry) {
    String namespace = (String) entry.get("ns");
    Object id = ((Document) ((Document) entry.get("event")).get("documentKey")).get("_id");
    for (Document earlier : byTimestamp.headMap(((BsonTimestamp) entry.get("ts")).getValue(), false).descendingMap().values()) {
      if (!namespace.equals(earlier.get("ns"))) continue;
      Document event = (Document) earlier.get("event");
      String type = (String) event.get("operationType");
      if (type.equals("drop")) return null;
      Document key = (Document) event.get("documentKey");
      if (key == null || !java.util.Objects.equals(key.get("_id"), id)) continue;
      return switch (type) {
        case "insert", "replace" -> (Document) event.get("fullDocument");
        case "update" -> (Document) earlier.get("after");
        default -> null;
      };
    }
    return null;
  }
}
