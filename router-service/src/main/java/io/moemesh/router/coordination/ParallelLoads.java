package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * One LoadAssignment stage on many instances at once, each within the load timeout (PlacementCoordinator's) from when
 * its call is sent. The executor may have fewer threads than there are instances (the router caps it at 64): the
 * calls beyond its threads queue until one frees, and their timeout must not run while they wait, or they would time
 * out without ever being sent.
 */
final class ParallelLoads {
    /** Slack for the call's own deadline (the load timeout) to fire first. */
    private static final long SLACK_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final ExecutorService executor;
    private final Duration timeout;

    ParallelLoads(ExecutorService executor, Duration timeout) {
        this.executor = executor;
        this.timeout = timeout;
    }

    /**
     * Runs {@code call} on every instance in parallel as far as the executor's threads allow, each within the load
     * timeout (plus a second for the call's own deadline to fire first) from when it starts. A call still queued once
     * every call could have run one after the other, each for its whole timeout, fails as never sent: only a call that
     * ignores its deadline and its interruption can hold a thread that long.
     *
     * @return the failures by instance, in instance order (empty: all succeeded)
     */
    Map<Instance, Throwable> onEvery(List<Instance> instances, Consumer<Instance> call) throws InterruptedException {
        long submitted = System.nanoTime();
        List<Future<?>> calls = new ArrayList<>();
        List<CompletableFuture<Long>> started = new ArrayList<>();
        for (Instance in : instances) {
            CompletableFuture<Long> start = new CompletableFuture<>();
            started.add(start);
            calls.add(executor.submit(() -> {
                start.complete(System.nanoTime());
                call.accept(in);
            }));
        }
        long perCall = timeout.toNanos() + SLACK_NANOS;
        long queueDeadline = submitted + perCall * Math.max(1, instances.size());
        Map<Instance, Throwable> failed = new LinkedHashMap<>();
        for (int i = 0; i < calls.size(); i++) {
            Future<?> f = calls.get(i);
            try {
                long startedAt = started.get(i).get(Math.max(0, queueDeadline - System.nanoTime()),
                        TimeUnit.NANOSECONDS);
                try {
                    f.get(Math.max(0, startedAt + perCall - System.nanoTime()), TimeUnit.NANOSECONDS);
                } catch (TimeoutException e) {
                    f.cancel(true);
                    failed.put(instances.get(i), new TimeoutException("no answer within " + timeout));
                }
            } catch (ExecutionException e) {
                failed.put(instances.get(i), e.getCause());
            } catch (TimeoutException e) {
                f.cancel(true);
                failed.put(instances.get(i), new TimeoutException("not sent: no load thread free within "
                        + Duration.ofNanos(queueDeadline - submitted)));
            }
        }
        return failed;
    }

    void close() {
        executor.shutdownNow();
    }
}
