package io.moemesh.cli.chaos;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;

/**
 * What a chaos run measured: requests, failures, token differences against the reference engine, latency (e2e per
 * request) in steady state and while an instance was down or not yet carrying traffic again, and each kill's
 * recovery.
 *
 * @param seconds wall time of the run
 */
public record ChaosReport(ChaosPlan plan, List<RequestOutcome> requests, List<Kill> kills, double seconds) {
    /** The goal: a restarted instance carries traffic again within this many seconds of SERVING. */
    public static final double TRAFFIC_GOAL_SECONDS = 10;

    public long finished() {
        return requests.size();
    }

    public long failed() {
        return requests.stream().filter(RequestOutcome::failed).count();
    }

    /** Requests that succeeded with tokens other than the reference engine's. */
    public long tokenDifferences() {
        return requests.stream().filter(r -> !r.failed() && !r.tokensOk()).count();
    }

    /** Failure messages and how often each occurred, most frequent first. */
    public Map<String, Long> failures() {
        Map<String, Long> counts = new LinkedHashMap<>();
        requests.stream().filter(RequestOutcome::failed).forEach(r -> counts.merge(r.error(), 1L, Long::sum));
        Map<String, Long> sorted = new LinkedHashMap<>();
        counts.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .forEach(e -> sorted.put(e.getKey(), e.getValue()));
        return sorted;
    }

    /** A request overlapping [kill, the victim carries traffic again] ran during a fault. */
    boolean duringFault(RequestOutcome r) {
        for (Kill k : kills) {
            double recovered = k.recovered() ? k.trafficAt() : seconds;
            if (r.start() < recovered && r.end() > k.killedAt()) {
                return true;
            }
        }
        return false;
    }

    /** Started during the warm-up (cold JIT, load ramping up): left out of the latency figures. */
    boolean warmingUp(RequestOutcome r) {
        return r.start() < plan.warmup().toNanos() / 1e9;
    }

    /**
     * p-th percentile (nearest rank) of e2e latency in ms over the requests after the warm-up that ran during a
     * fault ({@code faulted}) or in steady state; NaN when there are none.
     */
    public double latencyMillis(double p, boolean faulted) {
        return percentile(requests.stream().filter(r -> !warmingUp(r) && duringFault(r) == faulted), p);
    }

    /** p-th percentile over all requests after the warm-up. */
    public double latencyMillis(double p) {
        return percentile(requests.stream().filter(r -> !warmingUp(r)), p);
    }

    private static double percentile(java.util.stream.Stream<RequestOutcome> rs, double p) {
        double[] ms = rs.filter(Predicate.not(RequestOutcome::failed)).mapToDouble(RequestOutcome::millis).sorted().toArray();
        if (ms.length == 0) {
            return Double.NaN;
        }
        int rank = (int) Math.ceil(p / 100 * ms.length);
        return ms[Math.max(0, Math.min(ms.length - 1, rank - 1))];
    }

    /** Every kill recovered and carried traffic within the goal; no failed request; no token difference. */
    public boolean goalsMet() {
        return failed() == 0 && tokenDifferences() == 0 && !kills.isEmpty()
                && kills.stream().allMatch(k -> k.recovered() && k.trafficAfterServing() <= TRAFFIC_GOAL_SECONDS);
    }

    public String render() {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "requests: %d finished in %.0f s, %d failed, %d token differences%n",
                finished(), seconds, failed(), tokenDifferences()));
        failures().entrySet().stream().limit(5).forEach(e -> b.append(String.format(Locale.ROOT, "  %d x %s%n",
                e.getValue(), e.getKey())));
        // the counts of the samples the percentiles are over: finished requests only (failed ones are counted above)
        long warm = requests.stream().filter(r -> !warmingUp(r) && !r.failed()).count();
        long faulted = requests.stream().filter(r -> !warmingUp(r) && !r.failed() && duringFault(r)).count();
        b.append(String.format(Locale.ROOT, "latency ms (e2e, after the %d s warm-up): all (%d) p50 %.0f p99 %.0f; "
                        + "steady (%d) p50 %.0f p99 %.0f; during faults (%d) p50 %.0f p99 %.0f%n",
                plan.warmup().toSeconds(), warm, latencyMillis(50), latencyMillis(99), warm - faulted,
                latencyMillis(50, false), latencyMillis(99, false), faulted, latencyMillis(50, true),
                latencyMillis(99, true)));
        b.append(String.format(Locale.ROOT, "kills: %d%n", kills.size()));
        for (Kill k : kills) {
            b.append(String.format(Locale.ROOT, "  t=%6.1fs %-10s restarted +%.1fs, SERVING +%.1fs, carries traffic "
                            + "%.1fs after SERVING%n", k.killedAt(), k.instance(), k.restartedAt() - k.killedAt(),
                    k.servingAt() - k.killedAt(), k.trafficAfterServing()));
        }
        double[] after = kills.stream().filter(Kill::recovered).mapToDouble(Kill::trafficAfterServing).sorted().toArray();
        if (after.length > 0) {
            b.append(String.format(Locale.ROOT, "time from SERVING to traffic: max %.1f s (goal <= %.0f s)%n",
                    after[after.length - 1], TRAFFIC_GOAL_SECONDS));
        }
        b.append(goalsMet() ? "goals met: 0 failed, 0 token differences, every restarted instance carried traffic in time"
                : "goals NOT met").append(System.lineSeparator());
        return b.toString();
    }

    @Override
    public String toString() {
        return render() + Arrays.toString(kills.toArray());
    }
}
