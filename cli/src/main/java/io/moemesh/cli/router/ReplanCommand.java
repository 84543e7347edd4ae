package io.moemesh.cli.router;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.moemesh.proto.router.v1.PlacementSummary;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code moemesh router replan}: the running mesh's router plans a new epoch, every instance loads it, the router
 * publishes it (to every WatchPlacement stream and {@code <state-dir>/placement.json}) and this waits until every
 * watcher (gateway) reported it applied: router.proto's Replan with {@code wait_for_watchers}.
 */
@Command(name = "replan", mixinStandardHelpOptions = true,
        description = {"Re-plan the placement of the running mesh: the router plans a new epoch from the routes the "
                + "gateways reported (the even deal while it has seen too few, planner \"even\"), has every "
                + "expert-service load it, publishes it, and waits until every gateway watching it applied it.",
            "stdout: `epoch: N`, `planner: NAME`, the placement's summary (instances, extra replicas, max slots, routes "
                + "scored, fan-out, load max/mean), `published in: MS ms` and `applied: yes` (or `no` and the "
                + "unapplied watchers), one per line. Calls the router as the mesh's `placer` identity (mutual TLS)."},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:the epoch is published and every watcher applied it",
            "1:not published (an instance failed to load it, a replan is already running, ...), or published but "
                    + "not applied by every watcher within --timeout",
            "2:bad input (options, no mesh or no router in --state-dir, an unknown planner)",
            "3:the router is not reachable"})
public final class ReplanCommand implements Callable<Integer> {
    /** The watchers' wait is at most this; the whole call may take longer (planning, LoadAssignment). */
    static final Duration LOAD_ALLOWANCE = Duration.ofMinutes(5);
    /** The router refuses a longer watchers_timeout_ms (INVALID_ARGUMENT): refused here first, naming the option. */
    static final Duration MAX_TIMEOUT = Duration.ofMinutes(10);
    private static final Pattern DURATION = Pattern.compile("(\\d{1,12})(ms|s|m|h)?");

    @Spec
    CommandSpec spec;

    @Option(names = "--planner", paramLabel = "NAME",
            description = "Planner (affinity, affinity-stats, round-robin; default: the router's "
                    + "moemesh.router.planner).")
    String planner;

    @Option(names = "--timeout", defaultValue = "30s", paramLabel = "DURATION",
            description = "How long to wait for every watcher to apply the new epoch once it is published, e.g. "
                    + "500ms, 30s, 2m (a bare number is seconds; more than 0 and at most 10m, the router's limit; "
                    + "default ${DEFAULT-VALUE}).")
    String timeout;

    @Mixin
    RouterConnectionOptions router = new RouterConnectionOptions();

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Duration wait = watchersTimeout(timeout);
        String endpoint = router.endpoint();
        ReplanRequest request = ReplanRequest.newBuilder().setPlanner(planner == null ? "" : planner)
                .setWaitForWatchers(true).setWatchersTimeoutMs((int) wait.toMillis()).build();
        ManagedChannel ch = router.channel(endpoint);
        ReplanResponse r;
        try {
            r = RouterServiceGrpc.newBlockingStub(ch)
                    .withDeadlineAfter(wait.plus(LOAD_ALLOWANCE).toMillis(), TimeUnit.MILLISECONDS).replan(request);
        } catch (StatusRuntimeException e) {
            RouterCallFailure f = RouterCallFailure.of(e, endpoint);
            err.println("moemesh router replan: " + f.message());
            err.flush();
            return f.exitCode();
        } finally {
            ch.shutdownNow();
        }
        print(r, out);
        out.flush();
        if (!r.getApplied()) {
            err.println("moemesh router replan: epoch " + r.getEpoch() + " is published but not applied by every "
                    + "watcher within " + timeout + ": " + (r.getUnappliedWatchersCount() == 0 ? "(none named)"
                    : String.join(", ", r.getUnappliedWatchersList())) + " had not reported it applied");
            err.flush();
            return 1;
        }
        return 0;
    }

    static void print(ReplanResponse r, PrintWriter out) {
        PlacementSummary s = r.getSummary();
        out.println("epoch: " + Long.toUnsignedString(r.getEpoch()));
        out.println("planner: " + r.getPlanner());
        out.println("instances: " + Integer.toUnsignedString(s.getInstances()));
        out.println("extra replicas: " + Integer.toUnsignedString(s.getExtraReplicas()));
        out.println("max slots: " + Integer.toUnsignedString(s.getMaxSlotsUsed()));
        out.println("routes scored: " + Long.toUnsignedString(s.getRoutesScored()));
        // router.proto: both are 0 when no routes were seen, which is no score (a fan-out is at least 1)
        boolean scored = s.getRoutesScored() != 0;
        out.println("fan-out: " + (scored ? String.format(Locale.ROOT, "%.3f", s.getFanOut()) : "- (no routes scored)"));
        out.println("load max/mean: " + (scored ? String.format(Locale.ROOT, "%.3f", s.getLoadMaxOverMean())
                : "- (no routes scored)"));
        out.println("published in: " + Long.toUnsignedString(r.getPublishMillis()) + " ms");
        out.println("applied: " + (r.getApplied() ? "yes" : "no (unapplied watchers: "
                + String.join(", ", r.getUnappliedWatchersList()) + ")"));
    }

    /**
     * {@code --timeout}: digits with ms, s, m or h (none = seconds), more than 0 (0 in watchers_timeout_ms would
     * mean the router's default) and at most {@link #MAX_TIMEOUT}, the most the router accepts.
     */
    static Duration watchersTimeout(String text) {
        Matcher m = DURATION.matcher(text.strip());
        if (!m.matches()) {
            throw new IllegalArgumentException("--timeout must be a duration such as 500ms, 30s or 2m, got \"" + text
                    + "\"");
        }
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        Duration d = switch (unit) {
            case "ms" -> Duration.ofMillis(n);
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            default -> Duration.ofHours(n);
        };
        if (d.isZero() || d.compareTo(MAX_TIMEOUT) > 0) {
            throw new IllegalArgumentException("--timeout must be more than 0 and at most 10m (600000ms, the most the "
                    + "router waits for watchers), got " + text);
        }
        return d;
    }
}
