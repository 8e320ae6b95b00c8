/*
 * Flare's launcher for DynamoDB Local, compiled by lambdas/local/dynamodb-local.ts.
 *
 * DynamoDB Local has no host option: its Jetty server binds every interface.
 * This launcher builds the server exactly as DynamoDB Local's own
 * ServerRunner does, pins the connector to loopback before it binds, and
 * exits when its stdin closes, so the JVM cannot outlive the Node process
 * that started it, however that process ends.
 */
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class FlareLoopbackRunner {
  public static void main(String[] args) {
    Thread watchdog = new Thread(() -> {
      try {
        while (System.in.read() != -1) {
          // Nothing is ever sent; EOF means the parent is gone.
        }
      } catch (Exception e) {
        // A broken pipe means the same.
      }
      System.exit(0);
    }, "flare-parent-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    String host = System.getProperty("flare.bindHost", "127.0.0.1");
    try {
      DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
      Field field = DynamoDBProxyServer.class.getDeclaredField("server");
      field.setAccessible(true);
      Server server = (Server) field.get(proxy);
      for (Connector connector : server.getConnectors()) {
        ((ServerConnector) connector).setHost(host);
      }
      proxy.start();
      System.out.println("flare: DynamoDB Local listening on " + host);
    } catch (Throwable e) {
      System.err.println("flare: DynamoDB Local failed to start: " + e);
      e.printStackTrace();
      System.exit(2);
    }
  }
}
