package io.moemesh.kvcache.config;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.ClientCalls;
import io.moemesh.kvcache.KvCacheServiceApplication;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.kvcache.GetBlocks;
import io.moemesh.service.kvcache.KvGetWire;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * moemesh.kvcache.grpc-unix-socket: the whole service (Spring context) on a real epoll Unix domain socket next to its
 * TCP port, with the same mutual TLS; a Put and a Get of a multi-chunk prefix through the socket.
 */
class KvCacheUnixSocketTest {
    /**
     * 1,024 tokens a block (the most a gateway allows): 1 MiB, so Put moves every block in several chunks and Get in
     * one full chunk (KvCacheLargeBlockTest has blocks of several).
     */
    static final int BT = 1024;
    static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    @TempDir
    Path dir;

    private ConfigurableApplicationContext run(String... extra) {
        List<String> args = new ArrayList<>(KvTestMesh.args(dir.resolve("ssd"), BT, 2L * LAYOUT.bytesPerBlock(),
                10L * (LAYOUT.bytesPerBlock() + 64)));
        args.addAll(List.of(extra));
        return new SpringApplicationBuilder(KvCacheServiceApplication.class).run(args.toArray(String[]::new));
    }

    @Test
    void putAndGet_overTheUnixSocket_afterAStaleSocketFileWasLeftBehind_andTheFileIsGoneAfterShutdown()
            throws Exception {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        Path socket = dir.resolve("kvcache.sock");
        // what a kill -9 of the previous service leaves: the file, nobody listening
        try (ServerSocketChannel dead = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            dead.bind(UnixDomainSocketAddress.of(socket));
        }
        List<Block> seq = KvTestMesh.sequence(41, 4, BT, "t"); // DRAM holds 2: blocks 0 and 1 come from the SSD
        try (ConfigurableApplicationContext ctx = run("--moemesh.kvcache.grpc-unix-socket=" + socket)) {
            ManagedChannel ch = InstanceEndpoint.unix(socket)
                    .channelBuilder(KvTestMesh.certs().channelCredentials("gateway")).build();
            try {
                assertThat(HealthGrpc.newBlockingStub(ch).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
                PutResponse r = KvTestMesh.put(ch, KvTestMesh.putMessages(seq, BT, "t")).get(1, TimeUnit.MINUTES);
                assertThat(r.getResultsList()).extracting(x -> x.getOutcome())
                        .containsOnly(PutOutcome.PUT_OUTCOME_STORED);

                List<byte[]> got = GetBlocks.read(ClientCalls.blockingServerStreamingCall(ch,
                        KvGetWire.client(LAYOUT.bytesPerBlock()),
                        CallOptions.DEFAULT.withDeadlineAfter(1, TimeUnit.MINUTES),
                        GetRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(
                                        KvTestMesh.FINGERPRINT.bytes())).setLayout(KvTestMesh.wire(BT))
                                .addAllBlockHashes(hashes(seq)).build()), seq.size(), LAYOUT.bytesPerBlock());
                assertThat(got).hasSize(4);
                for (int i = 0; i < 4; i++) {
                    assertThat(got.get(i)).as("block %d", i).isEqualTo(seq.get(i).payload());
                }
                // the TCP port still serves the same store
                ManagedChannel tcp = KvTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
                try {
                    assertThat(KvTestMesh.get(tcp, BT, hashes(seq))).hasSize(4);
                } finally {
                    tcp.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
                }
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
            assertThat(Files.exists(socket)).isTrue();
        }
        assertThat(socket).doesNotExist();
    }

    @Test
    void aRelativeSocketPath_failsToStart_namingTheProperty() {
        assertThatThrownBy(() -> run("--moemesh.kvcache.grpc-unix-socket=kvcache.sock").close()).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.kvcache.grpc-unix-socket").hasMessageContaining("absolute");
    }

    @Test
    void tooLongSocketPath_failsToStart_namingThePropertyAndTheLimit() {
        String longPath = "/tmp/" + "x".repeat(120) + ".sock";
        assertThatThrownBy(() -> run("--moemesh.kvcache.grpc-unix-socket=" + longPath).close()).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.kvcache.grpc-unix-socket").hasMessageContaining("at most 107");
    }
}
