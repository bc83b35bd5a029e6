// An oplog for the MongoDB stand-in whose change events have the shape real MongoDB (5.0-8.0) gives:
// ns, documentKey {_id}, update with updateDescription, replace, drop followed by invalidate,
// wallTime. mongo-java-server's own oplog returns simplified events (no ns, the update spec as
// documentKey, replace as update); code written to the real format would reject those, and the
// product must never be bent to them. This class is test infrastructure only.
//
// Not emulated (tests cover them with recorded real events instead): rename, dropDatabase,
// transactions, pre-images, split events, postBatchResumeToken, truncatedArrays, oplog rollover.
// fullDocument "whenAvailable"/"required" (post-images) are answered like "updateLookup".
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.stream.Stream;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.oplog.OplogCursor;
import de.bwaldvogel.mongo.oplog.OplogPosition;

final class RealShapeOplog implements Oplog {
  private final MongoBackend backend;
  private final MongoCollection<Document> store;
  private final CursorRegistry cursors;
  private final Clock clock;
  // Every entry of `store`, by timestamp: a poll reads only what follows its position instead of
  // deserializing and sorting the whole oplog, whose size grows with every test ever run.
  private final ConcurrentSkipListMap<Long, Document> byTimestamp = new ConcurrentSkipListMap<>();
  private int lastSecond;
  private int increment;

  RealShapeOplog(MongoBackend backend, MongoCollection<Document> store, CursorRegistry cursors, Clock clock) {
    this.backend = backend;
    this.store = store;
    this.cursors = cursors;
    this.clock = clock;
    // Continue after what an earlier run of the server wrote, so cluster times only grow.
    for (Document entry : store.queryAll()) {
      BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
      byTimestamp.put(ts.getValue(), entry);
      if (ts.getTime() > lastSecond || (ts.getTime() == lastSecond && ts.getInc() > increment)) {
        lastSecond = ts.getTime();
        increment = ts.getInc();
      }
    }
  }

  private synchronized BsonTimestamp nextTimestamp() {
    int now = (int) clock.instant().getEpochSecond();
    if (now > lastSecond) {
      lastSecond = now;
      increment = 0;
    }
    return new BsonTimestamp(Instant.ofEpochSecond(lastSecond), ++increment);
  }

  private boolean isOwnStore(String namespace) {
    return namespace.equals(store.getFullName());
  }

  private synchronized void record(String namespace, Document event) {
    BsonTimestamp ts = nextTimestamp();
    Document entry = new Document("ts", ts).append("ns", namespace).append("wall", clock.instant()).append("event", event);
    store.addDocument(entry);
    byTimestamp.put(ts.getValue(), entry);
  }

  private static Document key(Object id) {
    return new Document("_id", id);
  }

  private Document lookUp(String namespace, Object id) {
    MongoDatabase db = backend.resolveDatabase(Utils.getDatabaseNameFromFullName(namespace));
    MongoCollection<?> collection = db.resolveCollection(Utils.getCollectionNameFromFullName(namespace), false);
    if (collection == null) return null;
    for (Document d : collection.handleQuery(key(id))) return d.cloneDeeply();
    return null;
  }

  @Override
  public void handleInsert(String namespace, List<Document> documents) {
    if (isOwnStore(namespace)) return;
    for (Document d : documents) {
      record(namespace, new Document("operationType", "insert").append("documentKey", key(d.get("_id")))
          .append("fullDocument", d.cloneDeeply()));
    }
  }

  @Override
  public void handleUpdate(String namespace, Document selector, Document update, List<Object> ids) {
    if (isOwnStore(namespace)) return;
    boolean replace = update.keySet().stream().noneMatch(k -> k.startsWith("$"));
    for (Object id : ids) {
      Document current = lookUp(namespace, id);
      Document event = new Document("operationType", replace ? "replace" : "update").append("documentKey", key(id));
      if (replace) {
        event.append("fullDocument", current);
      } else {
        event.append("updateDescription", describe(update, current));
      }
      record(namespace, event);
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
    if (isOwnStore(namespace)) return;
    for (Object id : deletedIds) record(namespace, new Document("operationType", "delete").append("documentKey", key(id)));
  }

  @Override
  public void handleDropCollection(String namespace) {
    if (isOwnStore(namespace)) return;
    record(namespace, new Document("operationType", "drop"));
    // A collection's change stream ends with invalidate after a drop; it has a resume token of its own.
    record(namespace, new Document("operationType", "invalidate"));
  }

  @Override
  public Cursor createCursor(Document request, String namespace, Aggregation aggregation) {
    Document token = (Document) (request.containsKey("startAfter") ? request.get("startAfter") : request.get("resumeAfter"));
    OplogPosition start;
    if (token != null) {
      start = OplogPosition.fromDocument(token);
    } else if (request.get("startAtOperationTime") != null) {
      start = new OplogPosition((BsonTimestamp) request.get("startAtOperationTime")).inclusive();
    } else {
      start = new OplogPosition(new BsonTimestamp(Instant.ofEpochSecond(lastSecond), increment));
    }
    String fullDocument = (String) request.getOrDefault("fullDocument", "default");
    OplogCursor cursor = new OplogCursor(cursors.generateCursorId(),
        position -> aggregation.runStagesAsStream(read(namespace, position, fullDocument)), start);
    cursors.add(cursor);
    return cursor;
  }

  private Stream<Document> read(String namespace, OplogPosition after, String fullDocument) {
    long from = Long.parseUnsignedLong(after.toHexString(), 16);
    return byTimestamp.tailMap(from, true).values().stream()
        .filter(e -> new OplogPosition((BsonTimestamp) e.get("ts")).isAfter(after))
        .filter(e -> namespace.equals(e.get("ns")))
        .map(e -> toChangeEvent(e, namespace, fullDocument));
  }

  private Document toChangeEvent(Document entry, String namespace, String fullDocument) {
    BsonTimestamp ts = (BsonTimestamp) entry.get("ts");
    Document stored = (Document) entry.get("event");
    String type = (String) stored.get("operationType");
    Document event = new Document("_id", new Document("_data", new OplogPosition(ts).toHexString()))
        .append("operationType", type).append("clusterTime", ts).append("wallTime", entry.get("wall"));
    if (!type.equals("invalidate")) {
      event.append("ns", new Document("db", Utils.getDatabaseNameFromFullName(namespace))
          .append("coll", Utils.getCollectionNameFromFullName(namespace)));
    }
    for (Map.Entry<String, Object> field : stored.entrySet()) {
      if (!field.getKey().equals("operationType")) event.append(field.getKey(), field.getValue());
    }
    if (type.equals("update") && !fullDocument.equals("default")) {
      // Looked up when the event is read, as MongoDB does: null when the document is gone by then.
      Document documentKey = (Document) stored.get("documentKey");
      event.append("fullDocument", lookUp(namespace, documentKey.get("_id")));
    }
    return event;
  }
}
