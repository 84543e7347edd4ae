package io.moemesh.cli.router;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code moemesh router describe}: router.proto's DescribeRouter of the running mesh's router. */
@Command(name = "describe", mixinStandardHelpOptions = true,
        description = {"Show the running mesh's router: current placement epoch, planner, predictor, instances, route "
                + "samples seen and in the planning window, whether a replan runs, and the gateways watching its "
                + "placements with the epoch each applied.",
            "stdout: `epoch: N`, `planner: NAME`, `predictor: NAME`, `instances: N`, `routes seen: N`, `routes in "
                + "window: N`, `replan running: yes|no`, `watchers: ID (applied epoch N), ...` (or none), one per line."},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:done", "1:the router refused", "2:bad input (options, no mesh or no router in --state-dir)",
            "3:the router is not reachable"})
public final class DescribeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    RouterConnectionOptions router = new RouterConnectionOptions();

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String endpoint = router.endpoint();
        ManagedChannel ch = router.channel(endpoint);
        DescribeRouterResponse r;
        try {
            r = RouterServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                    .describeRouter(DescribeRouterRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            RouterCallFailure f = RouterCallFailure.of(e, endpoint);
            err.println("moemesh router describe: " + f.message());
            err.flush();
            return f.exitCode();
        } finally {
            ch.shutdownNow();
        }
        out.println("epoch: " + Long.toUnsignedString(r.getPlacementEpoch()));
        out.println("planner: " + r.getPlanner());
        out.println("predictor: " + r.getPredictor());
        out.println("instances: " + Integer.toUnsignedString(r.getInstances()));
        out.println("routes seen: " + Long.toUnsignedString(r.getRoutesSeen()));
        out.println("routes in window: " + Long.toUnsignedString(r.getRoutesInWindow()));
        out.println("replan running: " + (r.getReplanRunning() ? "yes" : "no"));
        out.println("watchers: " + (r.getWatchersCount() == 0 ? "none" : r.getWatchersList().stream()
                .map(w -> w.getWatcherId() + " (applied epoch " + Long.toUnsignedString(w.getAppliedEpoch()) + ")")
                .collect(Collectors.joining(", "))));
        out.flush();
        return 0;
    }
}
