package io.moemesh.cli.bench.serve;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * Sends the requests at their arrival offsets, each on its own virtual thread, at most {@code maxConcurrency} in
 * flight (vLLM's {@code --max-concurrency}: a request that arrives while the limit is reached waits on the client,
 * and its TTFT starts when it is actually sent). The run is bounded: when {@code timeout} passes, requests not yet
 * sent are failed and those in flight are cancelled (their threads interrupted, which aborts the HTTP exchange or
 * the gRPC call). The duration, as in vLLM, runs from the start until the last request has finished.
 */
public final class LoadGenerator {

    /** Sends one request and measures it; must not throw for request failures (return a failed outcome). */
    @FunctionalInterface
    public interface Sender {
        RequestOutcome send(BenchPrompt prompt) throws Exception;
    }

    public record Result(List<RequestOutcome> outcomes, long durationNanos, boolean timedOut) {
    }

    private final Sender sender;
    private final int maxConcurrency;
    private final Duration timeout;
    private final IntConsumer onFinished;

    /**
     * @param maxConcurrency 0 = unlimited
     * @param onFinished     called with the number of finished requests after each one (progress)
     */
    public LoadGenerator(Sender sender, int maxConcurrency, Duration timeout, IntConsumer onFinished) {
        if (maxConcurrency < 0) {
            throw new IllegalArgumentException("--max-concurrency must be ≥ 1, got " + maxConcurrency);
        }
        this.sender = sender;
        this.maxConcurrency = maxConcurrency;
        this.timeout = timeout;
        this.onFinished = onFinished;
    }

    public Result run(List<BenchPrompt> prompts, double[] arrivalSeconds) {
        if (arrivalSeconds.length != prompts.size()) {
            throw new IllegalArgumentException("one arrival time per request is needed");
        }
        Semaphore slots = maxConcurrency == 0 ? null : new Semaphore(maxConcurrency);
        AtomicInteger finished = new AtomicInteger();
        List<Future<RequestOutcome>> futures = new ArrayList<>(prompts.size());
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        boolean timedOut = false;
        // Not try-with-resources: close() would wait without bound for a request that ignores cancellation.
        ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
        try {
            for (int i = 0; i < prompts.size() && !timedOut; i++) {
                long due = start + Math.round(arrivalSeconds[i] * 1e9);
                timedOut = !parkUntil(Math.min(due, deadline)) || due > deadline;
                if (!timedOut) {
                    BenchPrompt p = prompts.get(i);
                    futures.add(threads.submit(() -> {
                        try {
                            return sendOne(p, slots);
                        } finally {
                            onFinished.accept(finished.incrementAndGet());
                        }
                    }));
                }
            }
            if (timedOut) {
                threads.shutdownNow(); // the deadline passed while requests were still arriving
            }
            List<RequestOutcome> outcomes = new ArrayList<>(prompts.size());
            for (int i = 0; i < futures.size(); i++) {
                Future<RequestOutcome> f = futures.get(i);
                try {
                    long left = Math.max(0, deadline - System.nanoTime());
                    outcomes.add(timedOut ? awaitCancelled(f, prompts.get(i)) : f.get(left, TimeUnit.NANOSECONDS));
                } catch (TimeoutException e) {
                    timedOut = true;
                    threads.shutdownNow();
                    outcomes.add(awaitCancelled(f, prompts.get(i)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    threads.shutdownNow();
                    outcomes.add(RequestOutcome.failed("interrupted", prompts.get(i).promptTokens()));
                } catch (ExecutionException e) {
                    outcomes.add(RequestOutcome.failed(String.valueOf(e.getCause()), prompts.get(i).promptTokens()));
                }
            }
            for (int i = futures.size(); i < prompts.size(); i++) {
                outcomes.add(RequestOutcome.failed("timeout: not sent before --timeout",
                        prompts.get(i).promptTokens()));
            }
            long end = timedOut ? deadline : System.nanoTime();
            return new Result(outcomes, end - start, timedOut);
        } finally {
            threads.shutdownNow();
        }
    }

    private RequestOutcome sendOne(BenchPrompt p, Semaphore slots) {
        try {
            if (slots != null) {
                slots.acquire();
            }
        } catch (InterruptedException e) {
            return RequestOutcome.failed("timeout: still waiting for a --max-concurrency slot", p.promptTokens());
        }
        try {
            return sender.send(p);
        } catch (InterruptedException e) {
            return RequestOutcome.failed("timeout: cancelled in flight", p.promptTokens());
        } catch (Exception e) {
            return RequestOutcome.failed(Thread.currentThread().isInterrupted() ? "timeout: cancelled in flight"
                    : e.getClass().getSimpleName() + ": " + e.getMessage(), p.promptTokens());
        } finally {
            if (slots != null) {
                slots.release();
            }
        }
    }

    /** After cancellation a request ends promptly; if it does not, it is reported as timed out anyway. */
    private static RequestOutcome awaitCancelled(Future<RequestOutcome> f, BenchPrompt p) {
        try {
            return f.get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException | java.util.concurrent.CancellationException e) {
            // fall through
        }
        return RequestOutcome.failed("timeout: cancelled in flight", p.promptTokens());
    }

    /** Parks until {@code nanoTime} reaches {@code until}; false if interrupted. */
    private static boolean parkUntil(long until) {
        long left;
        while ((left = until - System.nanoTime()) > 0) {
            LockSupport.parkNanos(left);
            if (Thread.currentThread().isInterrupted()) {
                return false;
            }
        }
        return true;
    }
}
