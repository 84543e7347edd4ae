package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.support.KvTestMesh.FINGERPRINT;
import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static io.moemesh.kvcache.support.KvTestMesh.putMessages;
import static io.moemesh.kvcache.support.KvTestMesh.wire;
import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.moemesh.kvcache.KvCacheServiceApplication;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
/**
 * The kvcache-service in a real Spring Boot context, over real sockets with mutual TLS (the client is the mesh
 * identity {@code gateway}), on the tiny Mixtral (4 layers, 2 KV heads, head dim 16: 16 KiB blocks of 16 tokens).
 * DRAM holds 4 blocks and SSD 8, so a handful of puts is eviction pressure. Each test uses its own sequences
 * (seeds), so tests do not depend on one another's blocks. The subclasses share one context (same configuration).
 */
@SpringBootTest(classes = KvCacheServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
abstract class KvCacheServiceTestBase {
    static final int BT = 16;
    static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    static final Path SSD_DIR;

    static {
        try {
            SSD_DIR = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "kvcache-ssd");
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        long dram = 4L * LAYOUT.bytesPerBlock();
        long ssd = 8L * (LAYOUT.bytesPerBlock() + 44);
        for (String arg : KvTestMesh.args(SSD_DIR, BT, dram, ssd)) {
            String kv = arg.substring(2);
            int eq = kv.indexOf('=');
            registry.add(kv.substring(0, eq), () -> kv.substring(eq + 1));
        }
    }

    @Autowired
    GrpcServerLifecycle server;
    @LocalManagementPort
    int managementPort;
    ManagedChannel channel;
    KvCacheServiceGrpc.KvCacheServiceBlockingStub stub;

    @BeforeEach
    void connect() {
        channel = KvTestMesh.channel(server.port());
        stub = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES);
    }

    @AfterEach
    void disconnect() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    static ByteString fp() {
        return ByteString.copyFrom(FINGERPRINT.bytes());
    }

    LookupResponse lookup(List<ByteString> hashes) {
        return stub.lookup(LookupRequest.newBuilder().setModelFingerprint(fp()).setLayout(wire(BT))
                .addAllBlockHashes(hashes).build());
    }

    PutResponse put(List<Block> blocks, String tenant) throws Exception {
        return KvTestMesh.put(channel, putMessages(blocks, BT, tenant)).get(1, TimeUnit.MINUTES);
    }

    static StatusRuntimeException statusOf(Throwable t) {
        Throwable c = t instanceof ExecutionException ? t.getCause() : t;
        assertThat(c).isInstanceOf(StatusRuntimeException.class);
        return (StatusRuntimeException) c;
    }

    static int heads() {
        return KvTestMesh.CONFIG.numHeads();
    }

    static AttendRequest attend(List<Block> blocks, int layer, float[] query, List<Long> positions) {
        int tokens = positions.size();
        ByteBuffer q = ByteBuffer.allocate(query.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        q.asFloatBuffer().put(query);
        return AttendRequest.newBuilder().setModelFingerprint(fp()).setLayout(wire(BT)).setLayer(layer)
                .setQuery(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(tokens).addShape(heads())
                        .addShape(LAYOUT.headDim()).setData(ByteString.copyFrom(q.array())))
                .addAllPositions(positions).addAllBlockHashes(hashes(blocks)).build();
    }
}
