package io.moemesh.gateway.scheduling;

import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's one engine thread: steps the {@link StepScheduler} while there is work, and before each step
 * runs the boundary hook (placement epoch switch). Requests from any thread join at the next step boundary.
 * Every pass of the loop (a step, or an idle wait) records {@link #lastProgressNanos()}, so a health check can
 * tell a loop stuck inside a step from an idle one. An {@link Error} (OutOfMemoryError, StackOverflowError) is
 * never caught: it ends the thread, {@link #alive()} turns false and liveness fails, instead of a loop that
 * logs and limps on in a JVM whose state is unknown.
 *
 * <p>No sequence is left waiting on a thread that is gone: when the loop ends (that Error, or {@link #close()}),
 * every sequence submitted and not yet ended, running or queued, ends with an {@link EngineStoppedException}
 * (its listener's {@code onError}, on the dying thread as its last act), and from then on {@link #submit} refuses
 * at once with one. Without that a request would be accepted and never answered (the HTTP answers and SSE streams
 * have no timeout: a long generation is not an error).
 */
public final class EngineLoop implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EngineLoop.class);

    private final StepScheduler scheduler;
    private final Runnable atStepBoundary;
    private final Duration idlePoll;
    private final Semaphore wake = new Semaphore(0);
    private final Thread thread;
    private volatile boolean running = true;
    private volatile long lastProgressNanos = System.nanoTime();
    /** Forward passes run ({@link #steps()}); written by the engine thread only. */
    private volatile long steps;
    private final Object idle = new Object();
    /**
     * Sequences submitted and not yet ended (onFinish / onError returned): one count, kept at submit and at the end,
     * that any thread reads consistently. The scheduler's running and waiting lists belong to the engine thread, and
     * a sequence moving from one to the other between two reads of them would be seen in neither.
     */
    private final AtomicInteger inFlight = new AtomicInteger();
    /** The listeners of those sequences: what the loop's end must still tell (see the class comment). */
    private final Set<Counted> held = ConcurrentHashMap.newKeySet();
    /** Why the loop ended (set before it tells the sequences it held); null while it runs. */
    private volatile EngineStoppedException stopped;
    private final Tracer tracer;
    private final java.util.function.LongConsumer afterStep;

    public EngineLoop(StepScheduler scheduler, Runnable atStepBoundary, Duration idlePoll) {
        this(scheduler, atStepBoundary, idlePoll, OpenTelemetry.noop());
    }

    /** With tracing: each step with work is a span, parent of that step's expert calls. */
    public EngineLoop(StepScheduler scheduler, Runnable atStepBoundary, Duration idlePoll, OpenTelemetry otel) {
        this(scheduler, atStepBoundary, idlePoll, otel, nanos -> { });
    }

    /**
     * @param afterStep told how long each step that ran a forward pass took (nanoseconds), on the engine thread (the
     *                  kvcache's prefill-rate estimate reads the scheduler's last step there); must be cheap
     */
    public EngineLoop(StepScheduler scheduler, Runnable atStepBoundary, Duration idlePoll, OpenTelemetry otel,
                      java.util.function.LongConsumer afterStep) {
        if (idlePoll.compareTo(Duration.ofMillis(1)) < 0) {
            // Waited in whole milliseconds: less would be no wait, and an idle loop would spin.
            throw new IllegalArgumentException("the engine loop's idle poll must be at least 1ms, got " + idlePoll);
        }
        this.afterStep = afterStep;
        this.tracer = otel.getTracer("moemesh-gateway");
        this.scheduler = scheduler;
        this.atStepBoundary = atStepBoundary;
        this.idlePoll = idlePoll;
        this.thread = Thread.ofPlatform().name("moemesh-engine").daemon()
                .uncaughtExceptionHandler((t, e) -> log.error("the engine thread died: no request makes progress from "
                        + "now on (liveness fails)", e))
                .unstarted(this::run);
        thread.start();
    }

    /**
     * @throws EngineStoppedException at once when the engine thread is gone: nothing would ever step the sequence
     */
    public StepScheduler.Handle submit(GenerationRequest request, SequenceListener listener, String tenant) {
        refuseIfStopped();
        Counted counted = new Counted(listener);
        inFlight.incrementAndGet();
        held.add(counted);
        StepScheduler.Handle h;
        try {
            h = scheduler.submit(request, counted, tenant);
        } catch (RuntimeException e) {
            held.remove(counted);
            ended();
            throw e;
        }
        // The loop may have ended since the check above, and told the sequences it held before this one was among
        // them: then this sequence is refused here, unless that end reached it after all (it was told once).
        EngineStoppedException s = stopped;
        if (s != null && counted.claimEnd()) {
            held.remove(counted);
            ended();
            throw s;
        }
        wake.release();
        return new StepScheduler.Handle() {
            @Override
            public void cancel() {
                h.cancel();
                wake.release();
            }

            @Override
            public void stop() {
                h.stop();
                wake.release();
            }

            @Override
            public long sequenceId() {
                return h.sequenceId();
            }
        };
    }

    /**
     * Throws the {@link EngineStoppedException} a submit would get now, if the engine thread is gone: a caller checks
     * it before its own admission, whose answer for a dead engine (its queue never empties: full, 429) would mislead.
     */
    public void refuseIfStopped() {
        EngineStoppedException s = stopped;
        if (s != null) {
            throw s;
        }
        if (!thread.isAlive()) {
            // Ended without saying why (the end itself failed): still nothing will step a new sequence.
            throw new EngineStoppedException("the engine thread is not running; the gateway must be restarted");
        }
    }

    /** Ends every sequence with {@code reason} at the next step boundary ({@link StepScheduler#stopAll}). */
    public void stopAll(RuntimeException reason) {
        scheduler.stopAll(reason);
        wake.release();
    }

    /** Runs the step boundary hook soon even while idle (a new placement arrived). */
    public void wakeUp() {
        wake.release();
    }

    /** Waits up to {@code max} for every submitted sequence to have ended ({@link #inFlight()} 0). */
    public void awaitIdle(Duration max) {
        long deadline = System.nanoTime() + max.toNanos();
        synchronized (idle) {
            while (inFlight.get() > 0 && deadline - System.nanoTime() > 0) {
                try {
                    idle.wait(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    public int running() {
        return scheduler.running();
    }

    public int waiting() {
        return scheduler.waiting();
    }

    /** Sequences are running or waiting: the loop owes them a step. */
    public boolean busy() {
        return inFlight.get() > 0;
    }

    /** Sequences submitted whose listener has not been told their end yet (running, waiting or just submitted). */
    public int inFlight() {
        return inFlight.get();
    }

    private void ended() {
        if (inFlight.decrementAndGet() == 0) {
            synchronized (idle) {
                idle.notifyAll();
            }
        }
    }

    /**
     * The caller's listener, and the end of its sequence counted once the listener has been told it. The end is told
     * once: by the scheduler, or by the loop's end for a sequence the scheduler never ended ({@link #claimEnd}).
     */
    private final class Counted implements SequenceListener {
        private final SequenceListener listener;
        private final AtomicBoolean over = new AtomicBoolean();

        Counted(SequenceListener listener) {
            this.listener = listener;
        }

        /** Takes the one telling of the end: true for the caller that must tell it (and count it). */
        boolean claimEnd() {
            return over.compareAndSet(false, true);
        }

        @Override
        public void onAdmitted(int cachedPromptTokens) {
            listener.onAdmitted(cachedPromptTokens);
        }

        @Override
        public void onPrefillComplete() {
            listener.onPrefillComplete();
        }

        @Override
        public void onLogprobs(TokenLogprobs logprobs) {
            listener.onLogprobs(logprobs);
        }

        @Override
        public void onToken(int token) {
            listener.onToken(token);
        }

        @Override
        public void onFinish(GenerationResult result) {
            if (!claimEnd()) {
                return;
            }
            try {
                listener.onFinish(result);
            } finally {
                held.remove(this);
                ended();
            }
        }

        @Override
        public void onError(Throwable error) {
            if (!claimEnd()) {
                return;
            }
            try {
                listener.onError(error);
            } finally {
                held.remove(this);
                ended();
            }
        }
    }

    /**
     * Forward passes the engine has run, each over the whole batch of its step (all its micro-batches), a failed one
     * included. Steps that only ended, cancelled or preempted sequences ran none and are not counted, nor are idle
     * passes: per-step ratios (micro-batches per step, docs/metrics.md) divide by forward passes.
     */
    public long steps() {
        return steps;
    }

    /** {@link System#nanoTime()} when the loop last finished a pass (a step, or an idle wait). */
    public long lastProgressNanos() {
        return lastProgressNanos;
    }

    /** The engine thread runs (false once it died of an Error, or after {@link #close()}). */
    public boolean alive() {
        return stopped == null && thread.isAlive();
    }

    /** The engine thread: the loop, then the end of every sequence it still held, however the loop ended. */
    private void run() {
        try {
            loop();
        } catch (Error e) {
            endHeld(EngineStoppedException.of(e));
            // On to the uncaught exception handler: the Error is logged with its stack, and the thread ends.
            throw e;
        }
        endHeld(new EngineStoppedException("the gateway is shutting down"));
    }

    /**
     * Tells every sequence still held that the engine stopped, on the dying thread (nothing else steps them). After an
     * OutOfMemoryError this may fail too: each listener is tried on its own, so one failure does not leave the rest.
     */
    private void endHeld(EngineStoppedException why) {
        stopped = why;
        for (Counted c : held) {
            if (c.claimEnd()) {
                try {
                    c.listener.onError(why);
                } catch (Throwable t) {
                    log.error("telling a sequence that the engine stopped failed", t);
                } finally {
                    held.remove(c);
                    ended();
                }
            }
        }
    }

    private void loop() {
        while (running) {
            try {
                atStepBoundary.run();
                long start = System.nanoTime();
                if (step()) {
                    if (scheduler.lastStepRanForwardPass()) {
                        steps++;
                        afterStep.accept(System.nanoTime() - start);
                    }
                } else {
                    synchronized (idle) {
                        idle.notifyAll();
                    }
                    wake.tryAcquire(idlePoll.toMillis(), TimeUnit.MILLISECONDS);
                    wake.drainPermits();
                }
                lastProgressNanos = System.nanoTime();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                // A step's own failures reach its sequences; anything here is a bug in the loop: log, keep serving.
                // Only RuntimeException: an Error must end the thread (see the class comment).
                // No progress recorded: a loop that fails pass after pass while it has work is stalled.
                log.error("engine step failed", e);
                // Not at once: a failure that repeats (the boundary hook's) would spin the thread and flood the log.
                try {
                    wake.tryAcquire(idlePoll.toMillis(), TimeUnit.MILLISECONDS);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private boolean step() {
        if (scheduler.idle()) {
            return scheduler.step();
        }
        Span span = tracer.spanBuilder("moemesh.engine.step").setAttribute("moemesh.running", scheduler.running())
                .setAttribute("moemesh.waiting", scheduler.waiting()).startSpan();
        try (Scope ignored = span.makeCurrent()) {
            return scheduler.step();
        } finally {
            span.end();
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
