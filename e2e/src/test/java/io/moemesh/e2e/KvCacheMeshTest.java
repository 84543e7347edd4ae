package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.Tier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The kvcache-service in a mesh the launcher starts ({@code moemesh up}'s code): its SSD tier outlives down / up. */
class KvCacheMeshTest {
    private static final String NAME = "kvcache-up-down-up";

    @Test
    void blockPutBeforeDown_isServedByteExactFromTheSsdTierAfterTheNextUp() throws Exception {
        Path state = TestMeshes.stateDir(NAME);
        MeshLauncher.down(state, Duration.ofSeconds(10));
        deleteTree(state.resolve("kvcache"));
        List<KvCacheProcess.Block> chain = KvCacheProcess.chain(System.nanoTime(), 4);
        List<ByteString> keys = chain.stream().map(KvCacheProcess.Block::key).toList();

        long pid;
        try (RunningMesh mesh = TestMeshes.startWithKvCache(NAME, TestModels.MIXTRAL, 1, 1)) {
            MeshState.Service kv = mesh.state().kvcache();
            pid = kv.pid();
            assertThat(mesh.kvcacheEndpoint()).contains(kv.grpcEndpoint());
            assertThat(mesh.state().gateway().environment())
                    .containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", kv.grpcEndpoint());
            ManagedChannel ch = channel(mesh, kv);
            try {
                assertThat(KvCacheProcess.put(ch, chain).getResultsList())
                        .allSatisfy(r -> assertThat(r.getOutcome()).isEqualTo(PutOutcome.PUT_OUTCOME_STORED));
                // in DRAM (256 MiB): only the SIGTERM of down moves them to SSD
                assertThat(lookup(ch, keys).getTiersList()).containsOnly(Tier.TIER_DRAM);
            } finally {
                ch.shutdownNow();
            }
            assertThat(MeshLauncher.down(state, Duration.ofSeconds(20))).contains("stopped kvcache (pid " + pid + ")");
        }
        assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).isEmpty();
        try (Stream<Path> files = Files.walk(state.resolve("kvcache"))) {
            assertThat(files.filter(p -> p.toString().endsWith(".kvseg"))).as("segments kept by down").isNotEmpty();
        }

        try (RunningMesh mesh = TestMeshes.startWithKvCache(NAME, TestModels.MIXTRAL, 1, 1)) {
            MeshState.Service kv = mesh.state().kvcache();
            assertThat(ServiceProcess.serving("127.0.0.1", kv.grpcPort(), mesh.grpcCredentials(kv))).isTrue();
            ManagedChannel ch = channel(mesh, kv);
            try {
                LookupResponse found = lookup(ch, keys);
                assertThat(found.getPresentBlocks()).isEqualTo(chain.size());
                assertThat(found.getTiersList()).containsOnly(Tier.TIER_SSD);
                List<byte[]> served = KvCacheProcess.get(ch, keys);
                for (int i = 0; i < chain.size(); i++) {
                    assertThat(served.get(i)).as("block %d", i).isEqualTo(chain.get(i).payload());
                }
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /** A channel as the gateway's identity, over the mesh's mutual TLS. */
    private static ManagedChannel channel(RunningMesh mesh, MeshState.Service kv) {
        return Grpc.newChannelBuilderForAddress("127.0.0.1", kv.grpcPort(), mesh.credentials("gateway")).build();
    }

    private static LookupResponse lookup(ManagedChannel ch, List<ByteString> keys) {
        return KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).lookup(LookupRequest
                .newBuilder().setModelFingerprint(ByteString.copyFrom(KvCacheProcess.FINGERPRINT.bytes()))
                .setLayout(KvCacheProcess.layout()).addAllBlockHashes(keys).build());
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
