package io.moemesh.cli.mesh;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "up", mixinStandardHelpOptions = true,
        description = {"Start a local mesh: N expert-service JVMs, the router-service, the kvcache-service (KV blocks in "
                + "DRAM over SSD segment files in <state-dir>/kvcache/, kept across down / up) and the gateway on "
                + "loopback (free ports), experts split evenly over the instances and each replicated R times (placement epoch 1; the "
                + "router publishes later epochs: `moemesh router replan`). The gateway and the router reach the "
                + "expert-services over Unix domain sockets where epoll is available (--transport). Returns once every service reports SERVING "
                + "on gRPC health; the services keep running until `moemesh down`.",
            "stdout: `gateway: HOST:PORT`, `http: http://HOST:PORT`, `router: HOST:PORT` (not with --no-router) and "
                + "`kvcache: unix:///PATH` (its domain socket, under the unix transport) or `kvcache: HOST:PORT` (over "
                + "TCP; neither with --no-kvcache) on lines of their own, then one line per instance (id, endpoint, "
                + "experts held per layer). Progress goes to stderr, service output to <state-dir>/logs/<name>.log."},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:every service is SERVING",
            "2:bad input (model directory, --experts/--replicas, service jars not built, a mesh already running)",
            "3:a service exited or did not become healthy in time (everything started is stopped again)",
            "4:every service came up, but a moemesh down run during the launch is stopping the mesh (nothing on "
                + "stdout)"})
public final class UpCommand implements Callable<Integer> {
    /**
     * The exit code of an {@code up} whose mesh a {@code down} run during the launch is stopping: not 0, so
     * {@code moemesh up && moemesh generate ...} does not run against a mesh being torn down.
     */
    static final int STOPPED_BY_DOWN = 4;

    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--experts", defaultValue = "2", paramLabel = "N",
            description = "Expert-service instances (default ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--replicas", paramLabel = "R",
            description = "Instances holding each expert, 1..N (default N: every instance holds every expert; on one "
                    + "host the weights are mapped once, in the page cache, and the gateway gives each instance its "
                    + "even share of every step's experts, each on its share of the cores).")
    Integer replicas;

    @Option(names = "--restart", defaultValue = "always", paramLabel = "POLICY",
            description = "always: a supervisor process restarts a service that exits, with backoff (1 s doubling to "
                    + "30 s; the first restart at once), as a pod's restartPolicy does; never: it stays down "
                    + "(default ${DEFAULT-VALUE}).")
    String restart;

    @Option(names = "--no-router",
            description = "Leave the router-service out: the mesh runs from the placement file `up` writes (epoch 1), "
                    + "and the gateway follows no router.")
    boolean noRouter;

    @Option(names = "--no-kvcache",
            description = "Leave the kvcache-service out: the gateway keeps KV blocks only in its own memory. With it, "
                    + "its tiers default to 256 MiB of DRAM and 4 GiB of SSD (MOEMESH_KVCACHE_DRAM_BYTES, "
                    + "MOEMESH_KVCACHE_SSD_BYTES override them).")
    boolean noKvCache;

    @picocli.CommandLine.Mixin
    TransportOption transport = new TransportOption();

    @picocli.CommandLine.Mixin
    StateDirOption stateDir = new StateDirOption();

    @picocli.CommandLine.Mixin
    ServiceJvmOptions jvm = new ServiceJvmOptions("1g");

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        MeshSpec.RestartPolicy policy = switch (restart) {
            case "always" -> MeshSpec.RestartPolicy.ALWAYS;
            case "never" -> MeshSpec.RestartPolicy.NEVER;
            default -> throw new IllegalArgumentException("--restart must be always or never, got " + restart);
        };
        MeshSpec ms = new MeshSpec(model, experts, replicas == null ? experts : replicas, stateDir.resolve(), jvm.heap, jvm.timeout(),
                MeshHome.detect(), jvm.jvmOptions, policy).withTransport(transport.resolve());
        if (noRouter) {
            ms = ms.withoutRouter();
        }
        RunningMesh mesh = MeshLauncher.up(noKvCache ? ms : ms.withKvCache(), err, false);
        if (mesh.stopAskedBy().isPresent()) {
            // The launch said which down stops it (stderr); endpoints on stdout would be read as a mesh to use.
            err.println("moemesh up: exiting " + STOPPED_BY_DOWN + ": the mesh is being stopped, no endpoints printed");
            err.flush();
            return STOPPED_BY_DOWN;
        }
        printEndpoints(mesh, out);
        mesh.placementTable().summary().forEach(out::println);
        out.flush();
        err.println("moemesh up: mesh state in " + MeshState.file(ms.stateDir()) + "; stop it with: moemesh down"
                + (stateDir.isDefault() ? "" : " " + StateDirOption.argument(ms.stateDir())));
        err.flush();
        return 0;
    }

    /**
     * The lines {@code up} and {@code demo} start with: the gateway's gRPC and HTTP endpoints, the router's and the
     * kvcache-service's (those the mesh has).
     */
    static void printEndpoints(RunningMesh mesh, PrintWriter out) {
        out.println("gateway: " + mesh.gatewayEndpoint());
        out.println("http: " + mesh.gatewayHttp());
        mesh.routerEndpoint().ifPresent(r -> out.println("router: " + r));
        mesh.kvcacheEndpoint().ifPresent(k -> out.println("kvcache: " + k));
    }
}
