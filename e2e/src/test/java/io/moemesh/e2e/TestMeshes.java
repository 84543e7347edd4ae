package io.moemesh.e2e;

import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.MeshTransport;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Meshes of real service processes for the tests, started by the CLI's launcher from the jars this reactor
 * built. State and logs go to {@code e2e/target/meshes/<name>/} and stay there for post-mortems; the services
 * stop in {@link RunningMesh#close()} or, if the test JVM dies first, in the launcher's shutdown hook.
 *
 * <p>{@link #start} meshes have no router-service (unlike {@code moemesh up}): most tests switch placements
 * themselves ({@link Placements}: the placement file and LoadAssignment as the placer), which a router publishing
 * its own epochs would fight, and the others test the data path on the fixed epoch 1, where a router JVM would only
 * cost startup time. Tests of the router's placement use {@link #startWithRouter}; none starts the kvcache-service
 * but {@link #startWithKvCache}.
 */
final class TestMeshes {
    /** Four JVMs start at once on a 2-core machine: generous, but bounded. */
    static final Duration START_TIMEOUT = Duration.ofMinutes(4);
    /** Enough for the tiny models; keeps four service JVMs and the test JVM well inside the machine's memory. */
    static final String HEAP = "512m";
    /** Of every Generate call a test makes: a hung gateway fails the test instead of hanging the build. */
    static final Duration CALL_DEADLINE = Duration.ofMinutes(2);

    private TestMeshes() {
    }

    static Path stateDir(String name) {
        return TestModels.repoRoot().resolve("e2e").resolve("target").resolve("meshes").resolve(name);
    }

    static RunningMesh start(String name, String model, int experts, int replicas) {
        return start(name, model, experts, replicas, List.of());
    }

    /** With extra JVM options for every service (e.g. -D settings such as an OTLP endpoint). */
    static RunningMesh start(String name, String model, int experts, int replicas, List<String> jvmOptions) {
        return start(name, model, experts, replicas, jvmOptions, MeshSpec.RestartPolicy.NEVER);
    }

    /** With a restart policy: ALWAYS starts the supervisor that restarts killed services, as {@code up} does. */
    static RunningMesh start(String name, String model, int experts, int replicas, List<String> jvmOptions,
                             MeshSpec.RestartPolicy restart) {
        return up(spec(name, model, experts, replicas, jvmOptions, restart).withoutRouter());
    }

    /**
     * With the gateway reaching the expert-services over {@code transport} ({@link MeshTransport#UNIX}: a domain
     * socket per instance, as {@code moemesh up} does on Linux), without the router.
     */
    static RunningMesh start(String name, String model, int experts, int replicas, MeshTransport transport) {
        return start(name, model, experts, replicas, transport, List.of());
    }

    /** Over {@code transport}, with extra JVM options for every service. */
    static RunningMesh start(String name, String model, int experts, int replicas, MeshTransport transport,
                             List<String> jvmOptions) {
        return up(spec(name, model, experts, replicas, jvmOptions, MeshSpec.RestartPolicy.NEVER).withoutRouter()
                .withTransport(transport));
    }

    /**
     * With the router-service, as {@code moemesh up} starts it: it publishes epoch 1 and every replan to the
     * instances and the placement file, and the gateway follows it.
     */
    static RunningMesh startWithRouter(String name, String model, int experts, int replicas) {
        return startWithRouter(name, model, experts, replicas, List.of());
    }

    /** With the router and extra JVM options for every service (e.g. {@code -Dmoemesh.router.min-routes-to-plan=64}). */
    static RunningMesh startWithRouter(String name, String model, int experts, int replicas, List<String> jvmOptions) {
        return up(spec(name, model, experts, replicas, jvmOptions, MeshSpec.RestartPolicy.NEVER));
    }

    /**
     * With the kvcache-service, as {@code moemesh up} starts it (its SSD tier in {@code <state-dir>/kvcache/}, kept
     * across meshes of the same name), without the router.
     */
    static RunningMesh startWithKvCache(String name, String model, int experts, int replicas) {
        return startWithKvCache(name, model, experts, replicas, List.of());
    }

    /**
     * With the kvcache-service and extra JVM options for every service, on {@code up}'s default transport
     * ({@link MeshTransport#hostDefault()}: the domain sockets where epoll works, so the gateway restores with
     * {@code Locate} and reads the service's segment files, as under {@code moemesh up}).
     */
    static RunningMesh startWithKvCache(String name, String model, int experts, int replicas, List<String> jvmOptions) {
        return up(spec(name, model, experts, replicas, jvmOptions, MeshSpec.RestartPolicy.NEVER).withoutRouter()
                .withKvCache().withTransport(MeshTransport.hostDefault()));
    }

    private static MeshSpec spec(String name, String model, int experts, int replicas, List<String> jvmOptions,
                                 MeshSpec.RestartPolicy restart) {
        return new MeshSpec(TestModels.dir(model), experts, replicas, stateDir(name), HEAP, START_TIMEOUT,
                new MeshHome(TestModels.repoRoot()), jvmOptions, restart);
    }

    private static RunningMesh up(MeshSpec spec) {
        // a mesh left by a test JVM that was SIGKILLed (no shutdown hook ran)
        MeshLauncher.down(spec.stateDir(), Duration.ofSeconds(10));
        return MeshLauncher.up(spec, new PrintWriter(System.err, true), true);
    }
}
