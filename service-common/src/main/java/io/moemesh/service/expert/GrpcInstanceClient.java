package io.moemesh.service.expert;

import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.expert.v1.PrefetchResponse;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.grpc.TraceContexts;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * One long-lived {@code ExpertBatch} bidi stream per instance: a request message per layer per step, replies
 * matched by batch_id (they may come back in any order). A broken stream fails every call in flight and is
 * reopened by the next call, so a restarted instance is picked up again. A gRPC health watch on the same
 * channel ({@link HealthWatch}) tells {@link #health()} and reconnects the channel as soon as a restarted
 * instance listens again. {@link #prefetch Prefetch} hints are unary calls on the same channel (and so the same
 * credentials).
 */
public final class GrpcInstanceClient implements InstanceClient {
    /**
     * How long a Prefetch call may take: the instance only queues the loads before it answers, so an answer that
     * takes longer means the instance is in trouble, and a hint that late is worthless anyway.
     */
    public static final long PREFETCH_DEADLINE_MS = 5_000;
    private final String id;
    private final ManagedChannel channel;
    private final DType wireDtype;
    private final AtomicLong batchIds = new AtomicLong();
    private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
    private ClientCallStreamObserver<ExpertBatchRequest> stream;
    private final Tracer tracer;
    private final TraceContexts traces;
    private final HealthWatch health;

    private record Pending(CompletableFuture<float[]> future, int rows, int hidden) {
    }

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
        this.tracer = otel.getTracer("moemesh-gateway");
        this.traces = new TraceContexts(otel);
        this.id = id;
        this.wireDtype = wireDtype;
        this.channel = NettyChannelBuilder.forTarget(endpoint, credentials)
                .maxInboundMessageSize(maxInboundMessageBytes)
                .keepAliveTime(30, TimeUnit.SECONDS)
                // Not directExecutor(): call() opens the stream and sends under this object's lock, and with a
                // direct executor a stream that fails at once (instance just killed) calls back into broken()
                // inside open(), before the stream is assigned; the dead stream was then kept and every later
                // call waited out the step deadline (ExpertFailoverTest).
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
        pending.put(batchId, new Pending(f, c.rows(), c.hidden()));
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
        ExpertBatchRequest.Builder req = ExpertBatchRequest.newBuilder().setBatchId(batchId)
                .setPlacementEpoch(c.epoch()).setLayer(c.layer())
                .setActivations(TensorCodec.encode(c.activations(), 0, c.rows(), c.hidden(), wireDtype))
                .setOutputDtype(wireDtype)
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
        try {
            synchronized (this) {
                if (stream == null) {
                    stream = open();
                }
                stream.onNext(req.build());
            }
        } catch (RuntimeException e) {
            f.completeExceptionally(e);
        }
        return f;
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

    private ClientCallStreamObserver<ExpertBatchRequest> open() {
        ClientResponseObserver<ExpertBatchRequest, ExpertBatchResponse> observer = new ClientResponseObserver<>() {
            private ClientCallStreamObserver<ExpertBatchRequest> requests;

            @Override
            public void beforeStart(ClientCallStreamObserver<ExpertBatchRequest> requestStream) {
                this.requests = requestStream;
            }

            @Override
            public void onNext(ExpertBatchResponse r) {
                Pending p = pending.get(r.getBatchId());
                if (p == null) {
                    return;
                }
                if (r.hasStatus() && r.getStatus().getCode() != Status.Code.OK.value()) {
                    p.future.completeExceptionally(Status.fromCodeValue(r.getStatus().getCode())
                            .withDescription(id + ": " + r.getStatus().getMessage()).asRuntimeException());
                    return;
                }
                try {
                    float[] out = new float[p.rows * p.hidden];
                    TensorCodec.decode(r.getOutputs(), id + " outputs", p.rows, p.hidden, out, 0);
                    p.future.complete(out);
                } catch (IllegalArgumentException e) {
                    p.future.completeExceptionally(e);
                }
            }

            @Override
            public void onError(Throwable t) {
                broken(requests, t);
            }

            @Override
            public void onCompleted() {
                broken(requests, Status.UNAVAILABLE.withDescription(id + " closed the ExpertBatch stream").asRuntimeException());
            }
        };
        return (ClientCallStreamObserver<ExpertBatchRequest>) ExpertServiceGrpc.newStub(channel).expertBatch(observer);
    }

    private void broken(ClientCallStreamObserver<ExpertBatchRequest> which, Throwable t) {
        synchronized (this) {
            if (stream == which) {
                stream = null;
            }
        }
        for (Pending p : pending.values()) {
            p.future.completeExceptionally(t);
        }
    }

    @Override
    public void close() {
        health.close();
        synchronized (this) {
            if (stream != null) {
                stream.onCompleted();
                stream = null;
            }
        }
        channel.shutdownNow();
    }
}
