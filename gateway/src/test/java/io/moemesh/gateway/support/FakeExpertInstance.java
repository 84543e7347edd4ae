package io.moemesh.gateway.support;

import io.grpc.stub.StreamObserver;
import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.ExpertFfn;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.kernel.VectorOps;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.expert.v1.PrefetchResponse;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Path;
import io.grpc.InsecureServerCredentials;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A stand-in expert-service on a real gRPC socket, holding every expert of the model and computing them as the
 * reference engine does (so generations through it are golden), that can be switched to answer every ExpertBatch
 * message with UNAVAILABLE: the gateway then has no healthy replica. {@link #placementFile()} places every expert
 * on it, for {@code moemesh.gateway.placement-file}.
 */
public final class FakeExpertInstance implements AutoCloseable {
    /** While set, every message is answered UNAVAILABLE. */
    public final AtomicBoolean down = new AtomicBoolean();
    /** While set, every Prefetch call is answered UNAVAILABLE. */
    public final AtomicBoolean prefetchFails = new AtomicBoolean();
    /** Each batch answered this much later (a slow instance: a test's client keeps up with the generation). */
    public volatile Duration batchDelay = Duration.ZERO;
    /**
     * While it holds a latch, every ExpertBatch message waits for it before being answered: a test can keep a
     * generation in the middle of a step (so before the next step boundary) for as long as it needs.
     */
    public final java.util.concurrent.atomic.AtomicReference<java.util.concurrent.CountDownLatch> hold =
            new java.util.concurrent.atomic.AtomicReference<>();
    /** Every Prefetch call received (answered or failed), in arrival order. */
    public final List<PrefetchRequest> prefetches = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final MoeModel model;
    private final GrpcServerLifecycle server;
    private final Path placement;

    public FakeExpertInstance(Path modelDir) {
        this(modelDir, InsecureServerCredentials.create());
    }

    /** Listening with these credentials (mutual TLS: a certificate of {@link TestCertificates}). */
    public FakeExpertInstance(Path modelDir, io.grpc.ServerCredentials credentials) {
        this.model = MoeModel.open(modelDir);
        this.server = new GrpcServerLifecycle("fake-expert", "127.0.0.1", 0, credentials, 64 << 20, Duration.ofSeconds(1),
                List.of(new Service()), List.of());
        server.start();
        placement = ScratchPlacement.file("fake-expert");
        Placement p = EvenPlacement.build(1, List.of(Instance.newBuilder().setId("fake-0")
                        .setEndpoint("127.0.0.1:" + server.port()).build()), model.config().numLayers(),
                model.config().numExperts(), model.config().hasSharedExpert(), 1);
        PlacementFiles.write(placement, p);
    }

    public Path placementFile() {
        return placement;
    }

    /** The gRPC port it listens on (127.0.0.1), for placements of several instances. */
    public int port() {
        return server.port();
    }

    @Override
    public void close() {
        server.stop();
        model.close();
    }

    private final class Service extends ExpertServiceGrpc.ExpertServiceImplBase {
        private final ExpertFfn ffn = new ExpertFfn();

        @Override
        public void prefetch(PrefetchRequest req, StreamObserver<PrefetchResponse> out) {
            prefetches.add(req);
            if (prefetchFails.get()) {
                out.onError(io.grpc.Status.UNAVAILABLE.withDescription("the fake instance takes no hints").asRuntimeException());
                return;
            }
            out.onNext(PrefetchResponse.newBuilder().setAlreadyResident(req.getExpertsCount()).build());
            out.onCompleted();
        }

        @Override
        public StreamObserver<ExpertBatchRequest> expertBatch(StreamObserver<ExpertBatchResponse> out) {
            return new StreamObserver<>() {
                @Override
                public void onNext(ExpertBatchRequest req) {
                    java.util.concurrent.CountDownLatch latch = hold.get();
                    if (latch != null) {
                        try {
                            latch.await();
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                    ExpertBatchResponse.Builder r = ExpertBatchResponse.newBuilder().setBatchId(req.getBatchId())
                            .setLayer(req.getLayer()).setServingEpoch(1);
                    if (down.get()) {
                        r.setStatus(com.google.rpc.Status.newBuilder().setCode(io.grpc.Status.Code.UNAVAILABLE.value())
                                .setMessage("the fake instance is down"));
                    } else {
                        r.setOutputs(compute(req));
                    }
                    Runnable reply = () -> {
                        synchronized (out) {
                            out.onNext(r.build());
                        }
                    };
                    Duration delay = batchDelay;
                    if (delay.isZero()) {
                        reply.run();
                    } else {
                        // a slow instance: the reply leaves later, without holding the transport thread
                        CompletableFuture.runAsync(reply, CompletableFuture.delayedExecutor(delay.toNanos(),
                                TimeUnit.NANOSECONDS));
                    }
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    synchronized (out) {
                        out.onCompleted();
                    }
                }
            };
        }

        private synchronized io.moemesh.proto.common.v1.Tensor compute(ExpertBatchRequest req) {
            int h = model.config().hiddenSize();
            int rows = req.getTokenExpertCountsCount();
            float[] x = new float[rows * h];
            TensorCodec.decode(req.getActivations(), "activations", rows, h, x, 0);
            float[] out = new float[rows * h];
            float[] row = new float[h];
            float[] y = new float[h];
            int q = 0;
            for (int t = 0; t < rows; t++) {
                System.arraycopy(x, t * h, row, 0, h);
                for (int j = 0; j < req.getTokenExpertCounts(t); j++, q++) {
                    ExpertWeights w = ExpertWeights.load(model.tensors(), model.config(),
                            new ExpertKey(req.getLayer(), req.getExperts(q)));
                    ffn.apply(w, row, 1, y);
                    VectorOps.axpy(req.getWeights(q), y, 0, out, t * h, h);
                }
            }
            return TensorCodec.encode(out, 0, rows, h, req.getOutputDtype() == DType.DTYPE_BF16 ? DType.DTYPE_BF16
                    : DType.DTYPE_F32);
        }
    }
}
