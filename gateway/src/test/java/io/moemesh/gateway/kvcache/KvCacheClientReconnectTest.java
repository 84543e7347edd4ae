package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * An {@code Attend} made while the channel to the kvcache-service is in TRANSIENT_FAILURE asks it to reconnect now,
 * as every other call does: a long sequence attends every step, and without the ask a restarted service would fail
 * them until grpc-java's connect backoff (up to 2 minutes) ran out. The channel is the real one to a stopped service,
 * seen through a forwarding channel that counts the asks (their effect is only a matter of time: no backoff waited).
 */
class KvCacheClientReconnectTest {
    private final FakeKvCacheService kv = new FakeKvCacheService(WriteBackTest.LAYOUT.blockTokens());
    private final ManagedChannel real = NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build();
    private final AtomicInteger reconnects = new AtomicInteger();
    private final KvCacheClient client = new KvCacheClient(new Counting(real), kv.endpoint(), WriteBackTest.MODEL,
            WriteBackTest.LAYOUT, null);

    /** The real channel, counting {@link #resetConnectBackoff}. */
    private final class Counting extends ManagedChannel {
        private final ManagedChannel d;

        Counting(ManagedChannel d) {
            this.d = d;
        }

        @Override
        public void resetConnectBackoff() {
            reconnects.incrementAndGet();
            d.resetConnectBackoff();
        }

        @Override
        public ConnectivityState getState(boolean requestConnection) {
            return d.getState(requestConnection);
        }

        @Override
        public ManagedChannel shutdown() {
            return d.shutdown();
        }

        @Override
        public boolean isShutdown() {
            return d.isShutdown();
        }

        @Override
        public boolean isTerminated() {
            return d.isTerminated();
        }

        @Override
        public ManagedChannel shutdownNow() {
            return d.shutdownNow();
        }

        @Override
        public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
            return d.awaitTermination(timeout, unit);
        }

        @Override
        public <Q, A> ClientCall<Q, A> newCall(MethodDescriptor<Q, A> method, CallOptions options) {
            return d.newCall(method, options);
        }

        @Override
        public String authority() {
            return d.authority();
        }
    }

    @AfterEach
    void stop() {
        client.close();
        kv.close();
    }

    @Test
    void anAttendWhileTheServiceIsUnreachable_asksTheChannelToReconnectNow() {
        kv.stop();
        real.getState(true);
        await().atMost(Duration.ofSeconds(30)).until(() -> real.getState(false) == ConnectivityState.TRANSIENT_FAILURE);
        int rowBytes = 2 * WriteBackTest.LAYOUT.headDim() * Float.BYTES;

        client.attend(client.attendRequest(0, 1, 2, ByteString.copyFrom(new byte[rowBytes]), new long[] {4},
                List.of(), 1f), Duration.ofSeconds(5));

        assertThat(reconnects.get()).isEqualTo(1);
    }
}
