package io.moemesh.cli.bench.mesh;

import io.grpc.ChannelCredentials;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.opentelemetry.api.OpenTelemetry;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.expert.SharedMemory;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The gateway's own ExpertBatch client ({@link GrpcInstanceClient}, one per wire dtype) with one message in
 * flight: the time from handing it a call to having the decoded float32 reply is the per-layer hop as the
 * gateway pays it (encode, two socket crossings, the instance's decode and encode, the gateway's decode).
 */
final class HopClient implements AutoCloseable {
    private final String endpoint;
    private final ChannelCredentials credentials;
    private final UnixSocketSecurity unixSecurity;
    /** The arena a domain-socket client offers ({@link SharedMemory#OFF}: tensors in the messages). */
    private final SharedMemory sharedMemory;
    private final Map<DType, GrpcInstanceClient> clients = new EnumMap<>(DType.class);

    /**
     * @param endpoint     {@code host:port}, or {@code unix:///path} for the instance's domain socket
     * @param unixSecurity on a domain socket: plaintext to a peer-uid socket, or {@code credentials} on a tls one
     */
    HopClient(String endpoint, ChannelCredentials credentials, UnixSocketSecurity unixSecurity,
              SharedMemory sharedMemory) {
        this.sharedMemory = sharedMemory;
        this.endpoint = endpoint;
        this.credentials = credentials;
        this.unixSecurity = unixSecurity;
    }

    /**
     * Sends one call and waits for its reply; returns the round-trip time in nanoseconds.
     *
     * @param refusalExpected the call is meant to be answered with an error status (the empty round trip);
     *     otherwise an error fails the benchmark
     */
    long roundTrip(ExpertCall call, DType wire, boolean refusalExpected) throws InterruptedException {
        GrpcInstanceClient client = clients.computeIfAbsent(wire,
                w -> new GrpcInstanceClient("noop-expert", endpoint, credentials, unixSecurity, w, 256 << 20,
                        OpenTelemetry.noop(), GrpcInstanceClient.DEFAULT_STALL_BOUND, sharedMemory));
        long t0 = System.nanoTime();
        try {
            // Given back as the gateway's dispatch does once it has summed a reply.
            TensorArrayPool.shared().give(client.call(call).get(60, TimeUnit.SECONDS));
            if (refusalExpected) {
                throw new IllegalStateException("expert-service accepted a message it should refuse");
            }
        } catch (ExecutionException e) {
            if (!refusalExpected) {
                throw new IllegalStateException("expert-service refused the benchmark message: "
                        + e.getCause().getMessage(), e.getCause());
            }
        } catch (TimeoutException e) {
            throw new IllegalStateException("expert-service did not answer within 60 s", e);
        }
        return System.nanoTime() - t0;
    }

    @Override
    public void close() {
        clients.values().forEach(GrpcInstanceClient::close);
    }
}
