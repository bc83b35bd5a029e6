// Launches the MongoDB stand-in (mongo-java-server) for local runs and tests.
//
// The bundled mains do not enable the oplog, and without the oplog there are no change streams, so
// the stack needs this launcher. It installs RealShapeOplog, whose change events have the shape of
// real MongoDB's. Data lives in one H2 MVStore file so it survives a restart.
// Usage: java -cp <jars>:<this> MongoStandIn <host> <port> <data-file>
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractMongoBackend;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

public final class MongoStandIn {
  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: MongoStandIn <host> <port> <data-file>");
      System.exit(2);
    }
    H2Backend backend = new H2Backend(args[2]) {
      @Override
      protected Oplog createOplog() {
        MongoDatabase local = resolveDatabase("local");
        @SuppressWarnings("unchecked")
        MongoCollection<Document> store = (MongoCollection<Document>) local.resolveCollection(OPLOG_COLLECTION_NAME, false);
        if (store == null) store = (MongoCollection<Document>) local.createCollectionOrThrowIfExists(OPLOG_COLLECTION_NAME);
        return new RealShapeOplog(this, store, cursorRegistry(this), getClock());
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
