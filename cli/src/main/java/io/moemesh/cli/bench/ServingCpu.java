package io.moemesh.cli.bench;

import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.LongFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Each service's CPU time at the moment {@code moemesh up} reports it SERVING, read from the launcher's log lines as
 * they come ({@code moemesh up: expert-0 SERVING at ... (pid 4242, 3.1 s)}). Why not the CPU after {@code up}
 * exits: the gateway and the expert-services start their kernel warm-up once SERVING, so the experts' warm-ups run
 * while the other services still start, and every service keeps working after SERVING; sampled at the end, all of
 * that counted as start-up. {@code up} checks the services in turn, so one that was ready while it waited on another
 * is sampled when {@code up} gets to it.
 */
final class ServingCpu {
    private static final Pattern SERVING =
            Pattern.compile("^moemesh up: (\\S+) SERVING at .+ \\(pid (\\d+), [^)]*\\)$");

    private final LongFunction<Optional<ProcessCpu>> cpuOf;
    private final Map<String, ProcessCpu> atServing = new TreeMap<>();

    /** @param cpuOf a process's CPU time now, by pid ({@link ProcessCpu#of}) */
    ServingCpu(LongFunction<Optional<ProcessCpu>> cpuOf) {
        this.cpuOf = cpuOf;
    }

    /** One line of the launcher's log: a SERVING line samples that service's CPU time now; others are ignored. */
    synchronized void accept(String line) {
        Matcher m = SERVING.matcher(line);
        if (m.matches()) {
            cpuOf.apply(Long.parseLong(m.group(2))).ifPresent(cpu -> atServing.put(m.group(1), cpu));
        }
    }

    /** The services sampled so far, by mesh name. */
    synchronized Map<String, ProcessCpu> atServing() {
        return Map.copyOf(atServing);
    }
}
