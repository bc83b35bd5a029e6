// Launches the MongoDB stand-in (mongo-java-server) for local runs and tests.
//
// The bundled mains do not enable the oplog, and without the oplog there are no change streams, so
// the stack needs this launcher. It installs RealShapeOplog, whose change events have the shape of
// real MongoDB's. Data lives in one H2 MVStore file so it survives a restart.
// Usage: java -cp <jars>:<this> MongoStandIn <host> <port> <data-file>
// The oplog is capped like a replica set's: M2M_MONGO_OPLOG_MAX_BYTES (default 128 MiB of entries)
// and M2M_MONGO_OPLOG_MAX_EVENTS (default 0: no limit on the count); whichever is reached first.
// M2M_MONGO_MAX_WIRE_VERSION (default: 5.0's) is the maxWireVersion the handshake reports, for tests
// of behaviour gated on a newer server (21: 7.0's $changeStreamSplitLargeEvent), and
// M2M_MONGO_SPLIT_EVENT_BYTES (default 16 MiB, as MongoDB) the size above which a change event is
// split when its stream asks for it, and, only when set, fails a stream that does not (RealShapeOplog).
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractMongoBackend;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.message.MongoQuery;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

public final class MongoStandIn {
  // Entries are also held in the JVM heap (-Xmx2g in stack/ctl.sh), a few times their BSON size.
  private static final long DEFAULT_OPLOG_MAX_BYTES = 128L << 20;

  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: MongoStandIn <host> <port> <data-file>");
      System.exit(2);
    }
    long maxBytes = limit("M2M_MONGO_OPLOG_MAX_BYTES", DEFAULT_OPLOG_MAX_BYTES);
    long maxEvents = limit("M2M_MONGO_OPLOG_MAX_EVENTS", 0);
    long maxWireVersion = limit("M2M_MONGO_MAX_WIRE_VERSION", 0);
    long splitEventBytes = limit("M2M_MONGO_SPLIT_EVENT_BYTES", 0);
    H2Backend backend = new H2Backend(args[2]) {
      private RealShapeOplog oplog;
      // mongo-java-server drops a database by first forgetting it, then removing its H2 maps one by
      // one. A request for the database in between (a change stream's getMore on it, a write)
      // re-creates it on maps that the drop then removes, and every later request to it fails with
      // "Map ... is closed". So dropDatabase runs alone: every other request holds the read lock.
      private final ReadWriteLock dropLock = new ReentrantReadWriteLock();

      @Override
      protected Oplog createOplog() {
        MongoDatabase local = resolveDatabase("local");
        oplog = new RealShapeOplog(this, collection(local, OPLOG_COLLECTION_NAME), collection(local, "oplog.truncation"),
            cursorRegistry(this), getClock(), maxBytes, maxEvents, splitEventBytes);
        return oplog;
      }

      // mongo-java-server drops the collections one by one; the database's own event follows them.
      @Override
      public void dropDatabase(String databaseName) {
        boolean existed = listDatabaseNames().contains(databaseName);
        super.dropDatabase(databaseName);
        if (existed) oplog.handleDropDatabase(databaseName);
      }

      // A replica set member puts its cluster time in every reply (operationTime): drivers start a
      // change stream there, and a first start of capture records it as its start point.
      @Override
      public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
        var lock = command.equalsIgnoreCase("dropDatabase") ? dropLock.writeLock() : dropLock.readLock();
        lock.lock();
        try {
          return handleCommandUnderLock(channel, databaseName, command, query);
        } finally {
          lock.unlock();
        }
      }

      @Override
      public QueryResult handleQuery(MongoQuery query) {
        dropLock.readLock().lock();
        try {
          return super.handleQuery(query);
        } finally {
          dropLock.readLock().unlock();
        }
      }

      private Document handleCommandUnderLock(Channel channel, String databaseName, String command, Document query) {
        Document reply;
        if (command.equalsIgnoreCase("aggregate")) RealShapeOplog.takeSplitLargeEventStage(query);
        if (databaseName.equals("admin") && command.equalsIgnoreCase("aggregate")) {
          // A deployment-wide change stream is an aggregate on admin ({$changeStream:
          // {allChangesForCluster: true}}), which mongo-java-server's admin commands lack; the
          // database path serves it like any other stream.
          reply = resolveDatabase(databaseName).handleCommand(channel, command, query, this::resolveDatabase, oplog);
        } else {
          reply = super.handleCommand(channel, databaseName, command, query);
        }
        if (reply != null && maxWireVersion > 0 && reply.containsKey("maxWireVersion")) {
          reply.put("maxWireVersion", (int) maxWireVersion);
        }
        if (reply != null) {
          oplog.addPostBatchResumeToken(reply);
          reply.put("operationTime", oplog.lastOperationTime());
        }
        return reply;
      }
    };
    // 5.0 is the oldest MongoDB the product targets; the stand-in reports its wire version.
    backend.version(ServerVersion.MONGO_5_0);
    MongoServer server = new MongoServer(backend);
    server.enableOplog();
    server.bind(args[0], Integer.parseInt(args[1]));
    // SIGTERM (stack/stop) must flush the MVStore, or the last writes are lost.
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.shutdownNow();
      backend.close();
    }));
    System.out.println("mongo stand-in listening on " + args[0] + ":" + args[1] + ", data " + args[2]);
  }

  private static long limit(String variable, long fallback) {
    String value = System.getenv(variable);
    if (value == null || value.isBlank()) return fallback;
    try {
      return Long.parseLong(value.trim());
    } catch (NumberFormatException e) {
      System.err.println(variable + "=" + value + " is not a whole number");
      System.exit(2);
      return fallback;
    }
  }

  @SuppressWarnings("unchecked")
  private static MongoCollection<Document> collection(MongoDatabase db, String name) {
    MongoCollection<Document> found = (MongoCollection<Document>) db.resolveCollection(name, false);
    return found != null ? found : (MongoCollection<Document>) db.createCollectionOrThrowIfExists(name);
  }

  // The backend keeps its cursor registry private; change-stream cursors must be registered in it so
  // getMore finds them.
  private static CursorRegistry cursorRegistry(AbstractMongoBackend backend) {
    try {
      java.lang.reflect.Field f = AbstractMongoBackend.class.getDeclaredField("cursorRegistry");
      f.setAccessible(true);
      return (CursorRegistry) f.get(backend);
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("mongo-java-server changed: no cursorRegistry field", e);
    }
  }
}
