package io.moemesh.gateway.health;

import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.TensorCodec;
import io.grpc.InsecureServerCredentials;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An expert-service stand-in on a real loopback port: gRPC health (through the services' own
 * {@link GrpcServerLifecycle}) and an ExpertService whose experts output zeros. It can be stopped and started
 * again on the same port, and can hold every message unanswered until released (a step that makes no progress).
 */
final class FakeExpert implements AutoCloseable {
    private final List<Runnable> held = new CopyOnWriteArrayList<>();
    private boolean hold; // guarded by this
    private GrpcServerLifecycle server;
    private int port;

    /** Starts on a free port. */
    FakeExpert() {
        start(0);
    }

    int port() {
        return port;
    }

    synchronized void start(int onPort) {
        server = new GrpcServerLifecycle("fake expert", "127.0.0.1", onPort, InsecureServerCredentials.create(), 64 << 20, Duration.ofMillis(100),
                List.of(new ZeroExperts()), List.of());
        server.start();
        port = server.port();
    }

    /** Starts again on the port it had. */
    void restart() {
        start(port);
    }

    synchronized void stop() {
        if (server != null) {
            server.stop();
            server = null;
        }
    }

    /** From now on, messages are held unanswered. */
    synchronized void hold() {
        hold = true;
    }

    /** Answers every held message and stops holding. */
    void release() {
        List<Runnable> answers;
        synchronized (this) {
            hold = false;
            answers = List.copyOf(held);
            held.clear();
        }
        answers.forEach(Runnable::run);
    }

    /** Messages held unanswered now. */
    int heldCount() {
        return held.size();
    }

    private void answerOrHold(Runnable answer) {
        synchronized (this) {
            if (hold) {
                held.add(answer);
                return;
            }
        }
        answer.run();
    }

    @Override
    public void close() {
        stop();
    }

    private final class ZeroExperts extends ExpertServiceGrpc.ExpertServiceImplBase {
        @Override
        public StreamObserver<ExpertBatchRequest> expertBatch(StreamObserver<ExpertBatchResponse> out) {
            return new StreamObserver<>() {
                @Override
                public void onNext(ExpertBatchRequest r) {
                    int rows = TensorCodec.rows(r.getActivations());
                    int hidden = (int) r.getActivations().getShape(1);
                    ExpertBatchResponse reply = ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId())
                            .setLayer(r.getLayer()).setServingEpoch(r.getPlacementEpoch())
                            .setOutputs(TensorCodec.encode(new float[rows * hidden], 0, rows, hidden, DType.DTYPE_F32))
                            .build();
                    Runnable answer = () -> {
                        synchronized (out) {
                            out.onNext(reply);
                        }
                    };
                    answerOrHold(answer);
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
    }
}
