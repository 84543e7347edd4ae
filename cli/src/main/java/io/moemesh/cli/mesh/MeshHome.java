package io.moemesh.cli.mesh;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where the repository (and so the built service jars) is: the launcher passes it as {@code -Dmoemesh.home};
 * without it (tests, an IDE) the nearest folder above the working directory that holds the launcher script.
 */
public record MeshHome(Path root) {
    public static final String GATEWAY_JAR = "gateway/target/moemesh-gateway.jar";
    public static final String EXPERT_JAR = "expert-service/target/moemesh-expert-service.jar";
    /** The runnable Spring Boot jar (classifier exec; the plain jar is the library the router commands use). */
    public static final String ROUTER_JAR = "router-service/target/moemesh-router-service-exec.jar";
    /** The kvcache-service's runnable Spring Boot jar (classifier exec, as the router's). */
    public static final String KVCACHE_JAR = "kvcache-service/target/moemesh-kvcache-service-exec.jar";

    public static MeshHome detect() {
        String prop = System.getProperty("moemesh.home");
        if (prop != null && !prop.isBlank()) {
            return new MeshHome(Path.of(prop).toAbsolutePath().normalize());
        }
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            if (Files.isRegularFile(p.resolve("moemesh")) && Files.isRegularFile(p.resolve("pom.xml"))) {
                return new MeshHome(p);
            }
            p = p.getParent();
        }
        return new MeshHome(Path.of("").toAbsolutePath());
    }

    public Path gatewayJar() {
        return jar(GATEWAY_JAR);
    }

    public Path expertJar() {
        return jar(EXPERT_JAR);
    }

    public Path routerJar() {
        return jar(ROUTER_JAR);
    }

    public Path kvcacheJar() {
        return jar(KVCACHE_JAR);
    }

    /** The default state folder: {@code .moemesh} under the repository root. */
    public Path defaultStateDir() {
        return root.resolve(".moemesh");
    }

    private Path jar(String relative) {
        Path jar = root.resolve(relative);
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException(jar + " not found: build the services first (./mvnw install -DskipTests,"
                    + " or MOEMESH_REBUILD=1 ./moemesh ...)");
        }
        return jar;
    }

    /** The java binary of this JVM (the JDK 25 the CLI runs on), so every service runs on the same JDK. */
    public static String javaBinary() {
        return ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }
}
