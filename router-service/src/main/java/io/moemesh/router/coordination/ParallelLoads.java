package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/** One LoadAssignment stage on many instances at once, each within the load timeout (PlacementCoordinator's). */
final class ParallelLoads {
    private final ExecutorService executor;
    private final Duration timeout;

    ParallelLoads(ExecutorService executor, Duration timeout) {
        this.executor = executor;
        this.timeout = timeout;
    }

    /**
     * Runs {@code call} on every instance in parallel, each within the load timeout (plus a second for the call's own
     * deadline to fire first).
     *
     * @return the failures by instance, in instance order (empty: all succeeded)
     */
    Map<Instance, Throwable> onEvery(List<Instance> instances, Consumer<Instance> call) throws InterruptedException {
        List<Future<?>> calls = new ArrayList<>();
        for (Instance in : instances) {
            calls.add(executor.submit(() -> call.accept(in)));
        }
        long deadline = System.nanoTime() + timeout.toNanos() + TimeUnit.SECONDS.toNanos(1);
        Map<Instance, Throwable> failed = new LinkedHashMap<>();
        for (int i = 0; i < calls.size(); i++) {
            try {
                calls.get(i).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (ExecutionException e) {
                failed.put(instances.get(i), e.getCause());
            } catch (TimeoutException e) {
                calls.get(i).cancel(true);
                failed.put(instances.get(i), new TimeoutException("no answer within " + timeout));
            }
        }
        return failed;
    }

    void close() {
        executor.shutdownNow();
    }
}
