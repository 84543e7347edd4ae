package io.moemesh.cli.bench.mesh;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One long-lived ExpertBatch stream used the way the gateway uses it, one message in flight: the time from
 * sending a message to having its reply is the per-layer hop (serialisation, two socket crossings, the
 * instance's decode and encode) when the instance's backend does no work.
 */
final class HopClient implements AutoCloseable {
    private final ManagedChannel channel;
    private final StreamObserver<ExpertBatchRequest> requests;
    private final BlockingQueue<Object> replies = new ArrayBlockingQueue<>(1);

    HopClient(String host, int port) {
        channel = NettyChannelBuilder.forAddress(host, port).usePlaintext().maxInboundMessageSize(256 << 20).build();
        requests = ExpertServiceGrpc.newStub(channel).expertBatch(new StreamObserver<>() {
            @Override
            public void onNext(ExpertBatchResponse r) {
                replies.offer(r);
            }

            @Override
            public void onError(Throwable t) {
                replies.offer(t);
            }

            @Override
            public void onCompleted() {
            }
        });
    }

    /** Sends one message and waits for its reply; returns the round-trip time in nanoseconds. */
    long roundTrip(ExpertBatchRequest req) throws InterruptedException {
        long t0 = System.nanoTime();
        requests.onNext(req);
        Object r = replies.poll(60, TimeUnit.SECONDS);
        long t = System.nanoTime() - t0;
        if (r == null || r instanceof Throwable) {
            throw new IllegalStateException("expert-service did not answer: " + r, r instanceof Throwable e ? e : null);
        }
        return t;
    }

    ExpertBatchResponse call(ExpertBatchRequest req) throws InterruptedException {
        requests.onNext(req);
        Object r = replies.poll(60, TimeUnit.SECONDS);
        if (!(r instanceof ExpertBatchResponse resp)) {
            throw new IllegalStateException("expert-service did not answer: " + r);
        }
        return resp;
    }

    @Override
    public void close() {
        requests.onCompleted();
        channel.shutdownNow();
    }
}
