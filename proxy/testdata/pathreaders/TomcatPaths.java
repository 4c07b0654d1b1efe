// TomcatPaths serves path_differential_test.go's routes from an embedded
// Tomcat (Debian's libtomcat10-embed-java) with Tomcat's default connector
// settings, so the test can ask a real servlet container how it reads a
// request path. It listens on 127.0.0.1, prints "port N" once it accepts
// connections, and stops when its standard input closes.
//
// Each servlet answers its route name, a newline, and the path Tomcat
// mapped (servlet path + path info: decoded, ";" parameters stripped, dot
// segments resolved).
//
// Run: java -cp /usr/share/java/tomcat10-embed-core.jar TomcatPaths.java BASEDIR

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public class TomcatPaths {
    static final class Route extends HttpServlet {
        private final String name;

        Route(String name) {
            this.name = name;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            String info = req.getPathInfo();
            String path = req.getServletPath() + (info == null ? "" : info);
            resp.setContentType("text/plain");
            resp.setCharacterEncoding("UTF-8");
            resp.getOutputStream().write((name + "\n" + path).getBytes(StandardCharsets.UTF_8));
        }
    }

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[0]);
        tomcat.setPort(0);
        Connector connector = tomcat.getConnector();
        connector.setProperty("address", "127.0.0.1");

        Context ctx = tomcat.addContext("", null);
        // "/x/*" also matches "/x" itself (Servlet specification 12.2).
        String[][] routes = {{"public", "/public/*"}, {"admin", "/admin/*"}, {"api", "/api/*"}, {"home", "/"}};
        for (String[] r : routes) {
            Tomcat.addServlet(ctx, r[0], new Route(r[0]));
            ctx.addServletMappingDecoded(r[1], r[0]);
        }
        tomcat.start();
        System.out.println("port " + connector.getLocalPort());
        System.out.flush();

        InputStream in = System.in;
        while (in.read() != -1) {
            // Wait for the test to close standard input.
        }
        tomcat.stop();
        tomcat.destroy();
    }
}
