package io.moemesh.service.expert;

import io.grpc.CallOptions;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.expert.v1.PrefetchResponse;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.TensorArena;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.grpc.TensorMessage;
import io.moemesh.service.grpc.TraceContexts;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * One long-lived {@code ExpertBatch} bidi stream per instance: a request message per layer per step, replies
 * matched by batch_id (they may come back in any order). A broken stream fails every call in flight and is
 * reopened by the next call, so a restarted instance is picked up again. A gRPC health watch on the same
 * channel ({@link HealthWatch}) tells {@link #health()} and reconnects the channel as soon as a restarted
 * instance listens again. {@link #prefetch Prefetch} hints are unary calls on the same channel (and so the same
 * credentials).
 *
 * <p>The hop without copies: activations go from the call's float array into gRPC's pooled direct buffers, and
 * replies from gRPC's received buffers into the result's float array ({@link ExpertBatchWire}); the channel
 * runs its callbacks on the transport thread. A stream the instance stopped reading (messages wait for the
 * transport and nothing moved for the stall bound: {@link StallGuard}, looked at before and after each send and by
 * a check scheduled while messages wait) is ended, failing its calls with RESOURCE_EXHAUSTED and freeing what
 * waited; the next call reopens it. A burst of large messages to an
 * instance that reads is never refused, however long the stream is not ready during it.
 *
 * <p>On its own host (a {@code unix:///} endpoint with peer-uid security) each stream also offers the instance a
 * shared-memory arena ({@link SharedMemory}, {@link TensorArena}): once the instance answers that it mapped it, a
 * call's activations are written to a free slot and the message carries only where they lie, and the instance
 * writes the outputs back to the same slot. The slot is given back when the reply arrived (not when the caller
 * gave up on it: the instance may still write to it); a broken stream takes its arena with it.
 */
public final class GrpcInstanceClient implements InstanceClient {
    /**
     * How long a Prefetch call may take: the instance only queues the loads before it answers, so an answer that
     * takes longer means the instance is in trouble, and a hint that late is worthless anyway.
     */
    public static final long PREFETCH_DEADLINE_MS = 5_000;
    /**
     * How long a stream may go without any movement (the transport drained what waited, or a reply arrived) while
     * messages wait for the transport before it counts as not being read: the gateway's default step deadline, so
     * the instance has answered nothing for a whole step deadline and the calls sent before the stream stopped moving
     * have been given up by then. Calls sent on it later (the other micro-batch, later layers) may still be within
     * their deadlines; they fail early, with the rest. The gateway passes its own step deadline.
     */
    public static final Duration DEFAULT_STALL_BOUND = Duration.ofSeconds(10);
    private final String id;
    private final ManagedChannel channel;
    private final DType wireDtype;
    private final AtomicLong batchIds = new AtomicLong();
    private final PendingCalls pending = new PendingCalls();
    private final AtomicReference<Stream> stream = new AtomicReference<>();
    /** Serialises sends and stream opening (a StreamObserver is not thread-safe); never taken on a transport thread. */
    private final Object sendLock = new Object();
    private final long stallBoundNanos;
    private final Tracer tracer;
    private final TraceContexts traces;
    private final HealthWatch health;
    /** The arena settings when the endpoint is on this host with peer-uid security, else {@link SharedMemory#OFF}. */
    private final SharedMemory sharedMemory;
    private final AtomicLong arenaCalls = new AtomicLong();

    /**
     * @param credentials the mesh's channel credentials (mutual TLS, {@code MeshCredentials#channel()}), or
     *     {@code InsecureChannelCredentials} when plaintext was chosen explicitly
     */
    public GrpcInstanceClient(String id, String endpoint, ChannelCredentials credentials, DType wireDtype,
                              int maxInboundMessageBytes) {
        this(id, endpoint, credentials, wireDtype, maxInboundMessageBytes, OpenTelemetry.noop());
    }

    /** With tracing: each message is a client span whose context travels in the message to the instance. */
    public GrpcInstanceClient(String id, String endpoint, ChannelCredentials credentials, DType wireDtype,
                              int maxInboundMessageBytes, OpenTelemetry otel) {
        this(id, endpoint, credentials, UnixSocketSecurity.PEER_UID, wireDtype, maxInboundMessageBytes, otel,
                DEFAULT_STALL_BOUND, SharedMemory.defaults());
    }

    /**
     * @param unixSecurity on a {@code unix:///path} endpoint: {@link UnixSocketSecurity#PEER_UID} (plaintext, the
     *     instance's default) or {@link UnixSocketSecurity#TLS} ({@code credentials} on the socket too); must match
     *     the instance's {@code unix-socket-security}. Ignored on TCP
     * @param stallBound how long a stream may go without movement (the transport drained what waited, or a reply
     *     arrived) while messages wait for the transport before it is ended as not being read: its calls fail
     *     with RESOURCE_EXHAUSTED; positive
     * @param sharedMemory the arena each stream offers when the endpoint is {@code unix:///} and {@code unixSecurity}
     *     is peer-uid (ignored otherwise); {@link SharedMemory#OFF}: every tensor in the message
     */
    public GrpcInstanceClient(String id, String endpoint, ChannelCredentials credentials,
                              UnixSocketSecurity unixSecurity, DType wireDtype, int maxInboundMessageBytes,
                              OpenTelemetry otel, Duration stallBound, SharedMemory sharedMemory) {
        if (stallBound == null || !stallBound.isPositive()) {
            throw new IllegalArgumentException(id + ": stallBound must be a positive duration, got " + stallBound);
        }
        this.stallBoundNanos = stallBound.toNanos();
        this.tracer = otel.getTracer("moemesh-gateway");
        this.traces = new TraceContexts(otel);
        this.id = id;
        this.wireDtype = wireDtype;
        // host:port is TCP, unix:///path a domain socket on this host (InstanceEndpoint); a malformed endpoint
        // fails here naming it.
        InstanceEndpoint where = InstanceEndpoint.parse(endpoint);
        this.sharedMemory = InstanceEndpoint.UNIX.equals(transportOf(endpoint))
                && unixSecurity == UnixSocketSecurity.PEER_UID ? sharedMemory : SharedMemory.OFF;
        this.channel = where.channelBuilder(credentials, unixSecurity)
                .maxInboundMessageSize(maxInboundMessageBytes)
                .keepAliveTime(30, TimeUnit.SECONDS)
                // Callbacks on the transport thread that read the reply: one thread wake-up fewer per hop. Safe
                // because the callbacks never block (they complete futures) and a failure delivered inside
                // start() is handled without the send lock (see call() and broken()).
                .directExecutor()
                .build();
        this.health = new HealthWatch(id, channel);
        health.start();
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public int inFlight() {
        return pending.size();
    }

    /** Calls whose activations went through the shared-memory arena. */
    @Override
    public long arenaCalls() {
        return arenaCalls.get();
    }

    /** Arena slots held by calls whose reply has not arrived, on the current stream (0 without one). */
    @Override
    public int arenaSlotsInUse() {
        Stream s = stream.get();
        return s == null || s.arena == null ? 0 : s.arena.slotsInUse();
    }

    @Override
    public InstanceHealth health() {
        return health.current();
    }

    @Override
    public void onHealthChange(Consumer<InstanceHealth> listener) {
        health.addListener(listener);
    }

    @Override
    public CompletableFuture<float[]> call(ExpertCall c) {
        long batchId = batchIds.incrementAndGet();
        CompletableFuture<float[]> f = new CompletableFuture<>();
        PendingCalls.Call waiting = pending.add(batchId, f, c.rows(), c.hidden());
        Span span = tracer.spanBuilder("moemesh.expert.call").setSpanKind(SpanKind.CLIENT)
                .setAttribute("moemesh.instance", id).setAttribute("moemesh.layer", c.layer())
                .setAttribute("moemesh.tokens", c.rows()).startSpan();
        f.whenComplete((r, e) -> {
            pending.remove(batchId);
            if (e != null) {
                span.recordException(e);
                span.setStatus(StatusCode.ERROR, e.getMessage() == null ? "" : e.getMessage());
            }
            span.end();
        });
        try {
            ExpertBatchRequest.Builder req = ExpertBatchRequest.newBuilder().setBatchId(batchId)
                    .setPlacementEpoch(c.epoch()).setLayer(c.layer()).setOutputDtype(wireDtype)
                    .putAllTraceContext(traces.inject(Context.current().with(span)));
            for (int n : c.counts()) {
                req.addTokenExpertCounts(n);
            }
            for (int e : c.experts()) {
                req.addExperts(e);
            }
            for (float w : c.weights()) {
                req.addWeights(w);
            }
            ExpertBatchRequest header = req.build();
            synchronized (sendLock) {
                Stream s = stream.get();
                if (s == null || s.failure != null) {
                    s = new Stream();
                    stream.set(s);
                    // With the direct executor a call that fails at once (the instance was just killed) calls
                    // onError → broken() right here, inside start: broken() takes no lock, clears the stream
                    // (compareAndSet) and fails the calls sent on it; this one is not yet, so the check below does.
                    s.start();
                }
                // Tagged before the failure check (PendingCalls): a stream breaking now fails this call once or twice.
                waiting.sentOn(s);
                if (s.failure != null) {
                    stream.compareAndSet(s, null);
                    f.completeExceptionally(s.failure);
                    return f;
                }
                // Flow control: a peer that stops reading makes the stream not ready (gRPC buffers ~32 KiB, then
                // HTTP/2 windows fill). Not ready alone proves nothing (one large message makes it so): messages
                // waiting with nothing moving for the stall bound end the stream (what waited is freed) instead of
                // piling up for good. Meanwhile what a caller may add is its own limit's (the gateway's bulkhead).
                // The exception the guard made, not s.failure: the transport's CANCELLED for the reset may have
                // replaced that already.
                RuntimeException notRead = guard(s, s.stall.sending(s.requests.isReady(), System.nanoTime()));
                if (notRead != null) {
                    f.completeExceptionally(notRead);
                    return f;
                }
                Optional<TensorArena.Region> region = s.arena == null ? Optional.empty()
                        : s.arena.write(batchId, c.activations(), c.rows(), c.hidden(), wireDtype);
                TensorMessage<ExpertBatchRequest> message;
                if (region.isPresent()) {
                    message = TensorMessage.inArena(header, region.get(), c.rows(), c.hidden(), wireDtype);
                    arenaCalls.incrementAndGet();
                } else {
                    message = TensorMessage.of(header, c.activations(), c.rows(), c.hidden(), wireDtype);
                }
                // The float array is converted into gRPC's buffers here, on this thread, before onNext returns.
                try {
                    s.requests.onNext(message);
                } catch (RuntimeException e) {
                    if (s.arena != null) {
                        s.arena.release(batchId);
                    }
                    throw e;
                }
                // Also after the send: if this message is what made the stream not ready (the last one before the
                // windows filled), the clock starts now, not at some later send that may never come.
                RuntimeException endedNow = guard(s, s.stall.sent(s.requests.isReady(), System.nanoTime()));
                if (endedNow != null) {
                    f.completeExceptionally(endedNow); // failed with it already as a call sent on the stream
                }
            }
        } catch (RuntimeException e) {
            f.completeExceptionally(e);
        }
        return f;
    }

    /** "unix" for a {@code unix:} endpoint, else "tcp": the dispatch latency's {@code transport} label. */
    public static String transportOf(String endpoint) {
        return endpoint.startsWith("unix:") ? InstanceEndpoint.UNIX : InstanceEndpoint.TCP;
    }

    @Override
    public CompletableFuture<PrefetchAnswer> prefetch(PrefetchHints hints) {
        PrefetchRequest.Builder req = PrefetchRequest.newBuilder().setPlacementEpoch(hints.epoch());
        for (PrefetchHints.Expert e : hints.experts()) {
            req.addExperts(ExpertRef.newBuilder().setLayer(e.layer()).setExpert(e.expert()));
        }
        CompletableFuture<PrefetchAnswer> f = new CompletableFuture<>();
        try {
            ExpertServiceGrpc.newStub(channel).withDeadlineAfter(PREFETCH_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .prefetch(req.build(), new StreamObserver<>() {
                        @Override
                        public void onNext(PrefetchResponse r) {
                            f.complete(new PrefetchAnswer(r.getQueued(), r.getAlreadyResident(), r.getIgnored()));
                        }

                        @Override
                        public void onError(Throwable t) {
                            Status s = Status.fromThrowable(t);
                            f.completeExceptionally(s.withDescription(id + ": Prefetch: "
                                    + (s.getDescription() == null ? s.getCode() : s.getDescription())).asRuntimeException());
                        }

                        @Override
                        public void onCompleted() {
                            // A unary call without an answer is a broken server; the future must still end.
                            f.completeExceptionally(Status.INTERNAL.withDescription(id + ": Prefetch ended without an answer")
                                    .asRuntimeException());
                        }
                    });
        } catch (RuntimeException e) {
            f.completeExceptionally(e);
        }
        return f;
    }

    /**
     * Acts on the stall guard's verdict for {@code s}, under the send lock: schedules its check, or ends a stream
     * that was not read for the bound. Returns the RESOURCE_EXHAUSTED the stream was ended with, null if it was not.
     */
    private RuntimeException guard(Stream s, StallGuard.Verdict verdict) {
        switch (verdict) {
            case FINE -> {
                return null;
            }
            case CHECK_LATER -> {
                // Not on the transport thread: the check takes the send lock.
                CompletableFuture.delayedExecutor(s.stall.checkDelayNanos(System.nanoTime()), TimeUnit.NANOSECONDS)
                        .execute(() -> checkStall(s));
                return null;
            }
            default -> {
                RuntimeException notRead = Status.RESOURCE_EXHAUSTED.withDescription(id + ": the ExpertBatch stream "
                        + "is not being read (messages waited for the transport " + stallBoundNanos / 1_000_000
                        + " ms with none taken and no reply); the instance is overloaded or stuck").asRuntimeException();
                broken(s, notRead);
                try {
                    // Resets the stream: what waited for the transport is freed, and the instance drops its end.
                    s.requests.cancel("not being read", notRead);
                } catch (RuntimeException alreadyClosed) {
                    // The call ended meanwhile: nothing left to free.
                }
                return notRead;
            }
        }
    }

    /** The stall guard's scheduled look at a stream that was not ready: ends it if nothing moved since. */
    private void checkStall(Stream s) {
        synchronized (sendLock) {
            if (s.failure == null) {
                guard(s, s.stall.checkDue(s.requests.isReady(), System.nanoTime()));
            }
        }
    }

    /** One ExpertBatch stream; replies complete their calls on the transport thread that read them. */
    private final class Stream implements ClientResponseObserver<TensorMessage<ExpertBatchRequest>,
            TensorMessage<ExpertBatchResponse>> {
        private ClientCallStreamObserver<TensorMessage<ExpertBatchRequest>> requests;
        private final StallGuard stall = new StallGuard(stallBoundNanos);
        /** Set once the stream failed (possibly inside {@link #start}). */
        private volatile Throwable failure;
        /** This stream's shared-memory arena, offered in its headers; null without one. */
        private StreamArena arena;

        void start() {
            ClientCall<TensorMessage<ExpertBatchRequest>, TensorMessage<ExpertBatchResponse>> call =
                    channel.newCall(ExpertBatchWire.METHOD, CallOptions.DEFAULT);
            if (sharedMemory.on()) {
                arena = StreamArena.create(id, sharedMemory).orElse(null);
                if (arena != null) {
                    call = arena.offeredOn(call);
                }
            }
            ClientCalls.asyncBidiStreamingCall(call, this);
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<TensorMessage<ExpertBatchRequest>> requestStream) {
            this.requests = requestStream;
            requestStream.setOnReadyHandler(stall::progressed);
        }

        @Override
        public void onNext(TensorMessage<ExpertBatchResponse> reply) {
            stall.progressed(); // the instance takes a message per answer: it reads
            ExpertBatchResponse r = reply.header();
            // Removed before its future completes, not in the future's own callback: completing it wakes the
            // caller, which on a busy core runs before this thread gets back to that callback (the woken thread
            // preempts it) and asks inFlight() for its next choice of replica; a reply already here counted as a
            // call in flight sent every expert of the gateway's next layer to the other instance (11% of layers
            // at one sequence on the local mesh, docs/performance.md).
            PendingCalls.Call p = pending.remove(r.getBatchId());
            if (arena != null) {
                try {
                    reply = arena.reply(r.getBatchId(), reply, p != null);
                } catch (IllegalArgumentException e) {
                    if (p != null) {
                        p.future.completeExceptionally(e);
                    }
                    return;
                }
            }
            if (p == null) {
                return;
            }
            if (r.hasStatus() && r.getStatus().getCode() != Status.Code.OK.value()) {
                // An epoch refusal gets a type of its own: it is the caller's placement that is off, not the instance.
                p.future.completeExceptionally(EpochRefusedException.of(r.getStatus(),
                        Status.fromCodeValue(r.getStatus().getCode())
                                .withDescription(id + ": " + r.getStatus().getMessage()).asRuntimeException()));
                return;
            }
            try {
                float[] out = reply.floats(id + " outputs", p.rows, p.hidden);
                if (!p.future.complete(out)) {
                    TensorArrayPool.shared().give(out); // the caller gave up on it: nobody else holds the array
                }
            } catch (IllegalArgumentException e) {
                p.future.completeExceptionally(e);
            }
        }

        @Override
        public void onError(Throwable t) {
            broken(this, explain(t));
        }

        @Override
        public void onCompleted() {
            broken(this, Status.UNAVAILABLE.withDescription(id + " closed the ExpertBatch stream").asRuntimeException());
        }
    }

    /** gRPC cancels a stream whose reply did not parse ("Failed to read message."): say what was wrong instead. */
    private Throwable explain(Throwable t) {
        Status s = Status.fromThrowable(t);
        if (s.getCode() == Status.Code.CANCELLED && s.getCause() instanceof IllegalArgumentException bad) {
            return Status.INTERNAL.withDescription(id + ": a reply is not a valid " + ExpertBatchWire.RESPONSES.typeName()
                    + ": " + bad.getMessage()).withCause(bad).asRuntimeException();
        }
        return t;
    }

    /** No lock: it may run inside {@link Stream#start} on the calling thread, or on a transport thread. */
    private void broken(Stream which, Throwable t) {
        which.failure = t;
        stream.compareAndSet(which, null);
        pending.failSentOn(which, t);
    }

    @Override
    public void close() {
        health.close();
        synchronized (sendLock) {
            Stream s = stream.getAndSet(null);
            if (s != null && s.failure == null) {
                try {
                    s.requests.onCompleted();
                } catch (RuntimeException alreadyClosed) {
                    // The call ended meanwhile: nothing to half-close.
                }
            }
        }
        channel.shutdownNow();
    }
}
