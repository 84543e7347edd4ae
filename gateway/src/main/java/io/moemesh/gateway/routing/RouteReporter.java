package io.moemesh.gateway.routing;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.moemesh.proto.router.v1.LayerRoute;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouteSample;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.TokenRoute;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Streams the {@link RouteSampler}'s routes to the router (router.v1 {@code ReportRoutes}, client streaming). A
 * daemon thread flushes every {@code flushInterval} (at most a second: the router learns from the messages which
 * epoch the gateway has applied, and its {@code Replan(wait_for_watchers)} waits for that): one
 * {@code ReportRoutesRequest} with {@code source} = the watcher id, {@code placement_epoch} = the epoch the gateway
 * dispatches under now, the sample rate and up to {@link #MAX_SAMPLES} samples, more messages while more are
 * queued, and one without samples when none is.
 *
 * <p>Failures never reach the engine: a stream that fails is reopened at a later flush after an exponential backoff
 * with jitter; the routes queued meanwhile wait in the sampler's bounded queue, and samples go only on a stream that
 * is connected and ready (a new one first carries just the applied epoch), so few are lost with a stream that fails. {@code INVALID_ARGUMENT} means a
 * message of ours was malformed (a bug): the router's message is logged, what was sent on that stream is lost, and
 * the stream is reopened at the next flush without backoff. Every {@code streamLifetime} the stream is half-closed
 * (the router answers with what it accepted) and a new one opened, so nothing on either side grows without bound.
 */
public final class RouteReporter implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RouteReporter.class);
    /** Samples per message at most (router.v1 ReportRoutesRequest.samples). */
    public static final int MAX_SAMPLES = 4096;

    private final ManagedChannel channel;
    private final RouterServiceGrpc.RouterServiceStub stub;
    private final String endpoint;
    private final String source;
    private final String requestIdPrefix;
    private final RouteSampler sampler;
    private final LongSupplier appliedEpoch;
    private final Duration flushInterval;
    private final Duration streamLifetime;
    private final Backoff backoff;
    private final Semaphore wake = new Semaphore(0);
    private final Thread thread;
    private final LongAdder messagesSent = new LongAdder();
    private final LongAdder samplesReported = new LongAdder();
    private final LongAdder streamsFailed = new LongAdder();
    private volatile boolean running;
    private Stream stream;
    private long nextOpenNanos;
    private boolean retrying;

    /** One ReportRoutes call. */
    private static final class Stream {
        final long openedNanos = System.nanoTime();
        volatile ClientCallStreamObserver<ReportRoutesRequest> requests;
        /** Set once the call ended with an error. */
        volatile Status failure;
        volatile boolean ended;
    }

    /**
     * @param channel         to the router
     * @param endpoint        the router's address, for messages
     * @param source          the watcher id ({@code ReportRoutesRequest.source})
     * @param requestIdPrefix put before the engine's sequence id to make {@code request_id}: unique per gateway
     *                        process, so the router never mixes sequences of two gateways or two runs
     * @param appliedEpoch    the placement epoch the gateway dispatches under now (0 = none)
     * @param streamLifetime  how long one ReportRoutes call stays open before it is half-closed and replaced
     */
    public RouteReporter(ManagedChannel channel, String endpoint, String source, String requestIdPrefix, RouteSampler sampler,
                         LongSupplier appliedEpoch, Duration flushInterval, Duration streamLifetime,
                         Duration initialBackoff, Duration maxBackoff) {
        this.channel = channel;
        this.stub = RouterServiceGrpc.newStub(channel);
        this.endpoint = endpoint;
        this.source = source;
        this.requestIdPrefix = requestIdPrefix;
        this.sampler = sampler;
        this.appliedEpoch = appliedEpoch;
        this.flushInterval = flushInterval;
        this.streamLifetime = streamLifetime;
        this.backoff = new Backoff(initialBackoff, maxBackoff, () -> ThreadLocalRandom.current().nextDouble());
        this.thread = Thread.ofPlatform().name("moemesh-route-reporter").daemon().unstarted(this::loop);
    }

    public RouteReporter start() {
        running = true;
        thread.start();
        return this;
    }

    /** ReportRoutes messages sent (with or without samples). */
    public long messagesSent() {
        return messagesSent.sum();
    }

    /** Route samples sent to the router. */
    public long samplesReported() {
        return samplesReported.sum();
    }

    /** ReportRoutes streams that failed (what was sent on them since they opened may be lost). */
    public long streamsFailed() {
        return streamsFailed.sum();
    }

    private void loop() {
        while (running) {
            try {
                flush();
            } catch (RuntimeException e) {
                // Never let a bug stop the reports (the router would think this gateway gone): log, go on.
                log.error("route report flush failed", e);
            }
            try {
                wake.tryAcquire(flushInterval.toNanos(), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** One flush (the reporter thread only). */
    void flush() {
        long now = System.nanoTime();
        if (stream != null && stream.ended) {
            Status f = stream.failure;
            stream = null;
            if (f != null && f.getCode() == Status.Code.INVALID_ARGUMENT) {
                nextOpenNanos = now;
            } else if (f != null) {
                nextOpenNanos = now + backoff.next().toNanos();
                retrying = true;
            }
        }
        if (stream != null && now - stream.openedNanos > streamLifetime.toNanos()) {
            // Half-close: the router answers with what it accepted over the stream, and forgets it.
            stream.requests.onCompleted();
            stream = null;
        }
        boolean opened = false;
        if (stream == null) {
            if (now - nextOpenNanos < 0) {
                return;
            }
            if (retrying) {
                // grpc-java's own reconnect backoff grows to minutes while the router is away; ours counts.
                channel.resetConnectBackoff();
                retrying = false;
            }
            stream = open();
            opened = true;
        } else {
            backoff.reset();
        }
        ClientCallStreamObserver<ReportRoutesRequest> requests = stream.requests;
        if (requests == null) {
            return;
        }
        if (!requests.isReady()) {
            // Not connected yet (or the router does not keep up): samples wait in the sampler's bounded queue rather
            // than in a stream that may never reach the router; a new stream still carries the applied epoch.
            if (opened) {
                send(requests, List.of());
            }
            return;
        }
        int messages = 0;
        int maxMessages = sampler.waiting() / MAX_SAMPLES + 1;
        do {
            send(requests, sampler.drain(MAX_SAMPLES));
            messages++;
        } while (messages < maxMessages && sampler.waiting() > 0 && !stream.ended && requests.isReady());
    }

    private void send(ClientCallStreamObserver<ReportRoutesRequest> requests, List<SampledRoute> batch) {
        ReportRoutesRequest.Builder m = ReportRoutesRequest.newBuilder().setSource(source)
                .setPlacementEpoch(appliedEpoch.getAsLong()).setSampleRate((float) sampler.sampleRate());
        for (SampledRoute r : batch) {
            m.addSamples(sample(r));
        }
        requests.onNext(m.build());
        messagesSent.increment();
        samplesReported.add(batch.size());
    }

    private RouteSample sample(SampledRoute r) {
        int k = sampler.topK();
        TokenRoute.Builder t = TokenRoute.newBuilder().setPosition(r.position()).setTokenId(r.tokenId());
        for (int l = 0; l < sampler.layers(); l++) {
            LayerRoute.Builder lr = LayerRoute.newBuilder().setLayer(l);
            for (int j = 0; j < k; j++) {
                lr.addExperts(r.experts()[l * k + j]).addWeights(r.weights()[l * k + j]);
            }
            t.addLayers(lr);
        }
        return RouteSample.newBuilder().setRequestId(requestIdPrefix + r.sequence()).setRoute(t).setPrefill(r.prefill())
                .build();
    }

    private Stream open() {
        Stream s = new Stream();
        stub.reportRoutes(new ClientResponseObserver<ReportRoutesRequest, ReportRoutesResponse>() {
            @Override
            public void beforeStart(ClientCallStreamObserver<ReportRoutesRequest> r) {
                s.requests = r;
            }

            @Override
            public void onNext(ReportRoutesResponse r) {
                log.debug("router {} accepted {} route samples on a report stream (its epoch {})", endpoint,
                        r.getAccepted(), r.getPlacementEpoch());
            }

            @Override
            public void onError(Throwable t) {
                Status st = Status.fromThrowable(t);
                s.failure = st;
                s.ended = true;
                if (!running) {
                    return;
                }
                streamsFailed.increment();
                if (st.getCode() == Status.Code.INVALID_ARGUMENT) {
                    log.error("router {} refused a route report (a gateway bug; that stream's samples are lost, "
                            + "reopening): {}", endpoint, st.getDescription());
                } else {
                    log.warn("route reports to the router at {} failed ({}{}); reopening with backoff", endpoint,
                            st.getCode(), st.getDescription() == null ? "" : ": " + st.getDescription());
                }
            }

            @Override
            public void onCompleted() {
                s.ended = true;
            }
        });
        return s;
    }

    /** Stops the thread and half-closes the stream (routes still queued are not sent). */
    @Override
    public void close() {
        if (!running) {
            return;
        }
        running = false;
        wake.release();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Stream s = stream;
        if (s != null && !s.ended && s.requests != null) {
            try {
                s.requests.onCompleted();
            } catch (RuntimeException e) {
                log.debug("closing the report stream", e);
            }
        }
    }
}
