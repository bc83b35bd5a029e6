// Launches the MongoDB stand-in (mongo-java-server) for local runs and tests.
//
// The bundled mains do not enable the oplog, and without the oplog there are no change streams, so
// the stack needs this launcher. Data lives in one H2 MVStore file so it survives a restart.
// Usage: java -cp <jars>:<this> MongoStandIn <host> <port> <data-file>
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.ServerVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;

public final class MongoStandIn {
  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: MongoStandIn <host> <port> <data-file>");
      System.exit(2);
    }
    H2Backend backend = new H2Backend(args[2]);
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
}
