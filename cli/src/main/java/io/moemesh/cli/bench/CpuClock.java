package io.moemesh.cli.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Predicate;

/**
 * CPU time of a set of threads of this process, told apart by name ({@link ThreadMXBean}): how the restore bench
 * charges the service's threads and the client's separately while both run in one JVM. CPU seconds per byte, unlike
 * wall-clock rates, do not change with what else the machine runs (docs/performance.md, "KV-cache restore").
 * Threads that exit between {@link #start} and {@link #elapsedNanos} lose their time after their last sample; the
 * bench's threads live as long as the run.
 */
final class CpuClock {
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    private final Predicate<String> names;
    private final boolean withCaller;
    private final Map<Long, Long> startNanos = new HashMap<>();
    private long callerStart;

    /**
     * @param names      which threads count, by name
     * @param withCaller whether the thread that calls {@link #start} and {@link #elapsedNanos} counts too
     */
    CpuClock(Predicate<String> names, boolean withCaller) {
        this.names = names;
        this.withCaller = withCaller;
    }

    /** Only the calling thread. */
    static CpuClock caller() {
        return new CpuClock(n -> false, true);
    }

    /** Whether per-thread CPU time can be read here. */
    static boolean supported() {
        return THREADS.isThreadCpuTimeSupported();
    }

    CpuClock start() {
        if (supported() && !THREADS.isThreadCpuTimeEnabled()) {
            THREADS.setThreadCpuTimeEnabled(true);
        }
        startNanos.clear();
        startNanos.putAll(sample());
        callerStart = THREADS.getCurrentThreadCpuTime();
        return this;
    }

    /** CPU nanoseconds the threads used since {@link #start}; -1 when the JVM cannot tell. */
    long elapsedNanos() {
        if (!supported()) {
            return -1;
        }
        long total = withCaller ? THREADS.getCurrentThreadCpuTime() - callerStart : 0;
        for (Map.Entry<Long, Long> e : sample().entrySet()) {
            total += e.getValue() - startNanos.getOrDefault(e.getKey(), 0L);
        }
        return total;
    }

    private Map<Long, Long> sample() {
        Map<Long, Long> out = new HashMap<>();
        for (ThreadInfo t : THREADS.getThreadInfo(THREADS.getAllThreadIds())) {
            if (t != null && names.test(t.getThreadName())) {
                long cpu = THREADS.getThreadCpuTime(t.getThreadId());
                if (cpu >= 0) {
                    out.put(t.getThreadId(), cpu);
                }
            }
        }
        return out;
    }
}
