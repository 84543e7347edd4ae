package io.moemesh.cli.mesh;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What {@code up} starts.
 *
 * @param heap        -Xmx of every service JVM, e.g. "1g"
 * @param startTimeout how long all services together may take to report SERVING
 * @param jvmOptions  extra JVM options for every service (tests: e.g. a smaller code cache)
 * @param restart     whether a supervisor process restarts services that exit ({@code up}'s default) or not
 * @param router      whether the router-service runs too (the default): it owns placement, publishes epoch 1 and
 *                    every replan to the instances and the placement file; without it the mesh runs from the
 *                    placement file {@code up} writes, and tests or tools switch epochs themselves
 *                    ({@link #withoutRouter()})
 * @param kvcache     whether the kvcache-service runs too ({@code moemesh up}'s default, {@link #withKvCache()}): KV
 *                    blocks of the mesh's model in DRAM over SSD segment files under {@code <state-dir>/kvcache/},
 *                    which are kept across {@code down} / {@code up}; the gateway is given its endpoint. Off in the
 *                    shorter constructors (tests, benches, chaos, the demo: one JVM less to start)
 * @param transport   how the gateway and the router reach the expert-services: {@link MeshTransport#UNIX} (a domain
 *                    socket per instance, {@code unix:///...} endpoints in the placement; {@code moemesh up}'s
 *                    default where epoll is available, {@link #withTransport}) or {@link MeshTransport#TCP} (loopback
 *                    ports; the shorter constructors)
 */
public record MeshSpec(Path model, int experts, int replicas, Path stateDir, String heap, Duration startTimeout,
                       MeshHome home, List<String> jvmOptions, RestartPolicy restart, boolean router, boolean kvcache,
                       MeshTransport transport) {

    /** Over TCP. */
    public MeshSpec(Path model, int experts, int replicas, Path stateDir, String heap, Duration startTimeout,
                    MeshHome home, List<String> jvmOptions, RestartPolicy restart, boolean router, boolean kvcache) {
        this(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, router, kvcache,
                MeshTransport.TCP);
    }

    /** What happens to a service that exits, in the words of a pod's restartPolicy. */
    public enum RestartPolicy {
        /** A supervisor ({@link MeshSupervisor}) starts it again, with backoff. */
        ALWAYS,
        /** It stays down (tests that kill instances on purpose, the demo). */
        NEVER
    }

    /** Without the kvcache-service. */
    public MeshSpec(Path model, int experts, int replicas, Path stateDir, String heap, Duration startTimeout,
                    MeshHome home, List<String> jvmOptions, RestartPolicy restart, boolean router) {
        this(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, router, false);
    }

    /** With the router, without the kvcache-service. */
    public MeshSpec(Path model, int experts, int replicas, Path stateDir, String heap, Duration startTimeout,
                    MeshHome home, List<String> jvmOptions, RestartPolicy restart) {
        this(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, true);
    }

    /** With the router, without a supervisor nor the kvcache-service. */
    public MeshSpec(Path model, int experts, int replicas, Path stateDir, String heap, Duration startTimeout,
                    MeshHome home, List<String> jvmOptions) {
        this(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, RestartPolicy.NEVER);
    }

    /**
     * The same mesh without the router-service: for whoever switches placements itself (the placement file and
     * LoadAssignment as {@link MeshLauncher#PLACER}), which a router would fight, and for benches that measure the
     * data path alone.
     */
    public MeshSpec withoutRouter() {
        return new MeshSpec(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, false,
                kvcache, transport);
    }

    /** The same mesh with the kvcache-service, as {@code moemesh up} starts it (unless {@code --no-kvcache}). */
    public MeshSpec withKvCache() {
        return new MeshSpec(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, router,
                true, transport);
    }

    /** The same mesh with the gateway and router reaching the expert-services over {@code transport}. */
    public MeshSpec withTransport(MeshTransport transport) {
        return new MeshSpec(model, experts, replicas, stateDir, heap, startTimeout, home, jvmOptions, restart, router,
                kvcache, transport);
    }

    /** {@code <state-dir>/kvcache/}: the kvcache-service's SSD tier; {@code up} and {@code down} never delete it. */
    public Path kvcacheDir() {
        return stateDir.resolve("kvcache");
    }

    public MeshSpec {
        if (transport == null) {
            throw new IllegalArgumentException("transport must be set");
        }
        if (restart == null) {
            throw new IllegalArgumentException("restart policy must be set");
        }
        if (experts < 1) {
            throw new IllegalArgumentException("--experts must be ≥ 1, got " + experts);
        }
        if (replicas < 1 || replicas > experts) {
            throw new IllegalArgumentException("--replicas must be in [1, --experts = " + experts + "], got " + replicas);
        }
        if (!heap.matches("\\d+[kKmMgG]?")) {
            throw new IllegalArgumentException("--heap must be a JVM size such as 512m or 1g, got " + heap);
        }
        model = model.toAbsolutePath().normalize();
        stateDir = stateDir.toAbsolutePath().normalize();
        jvmOptions = List.copyOf(jvmOptions);
    }
}
