package io.moemesh.kvcache.config;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.moemesh.kvcache.KvCacheServiceApplication;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.settings.SettingRefusedException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.context.ConfigurableApplicationContext;

/** Whole Spring contexts of the service: blocks acknowledged before a shutdown are served after it; bad settings. */
class KvCacheRestartTest {
    /**
     * 1,024 tokens a block (the most a gateway allows): 1 MiB, so Put moves every block in several chunks and Get in
     * one full chunk (KvCacheLargeBlockTest has blocks of several).
     */
    static final int BT = 1024;
    static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    @TempDir
    Path ssdDir;

    ConfigurableApplicationContext run(String... extra) {
        List<String> args = new ArrayList<>(KvTestMesh.args(ssdDir, BT, 2L * LAYOUT.bytesPerBlock(),
                10L * (LAYOUT.bytesPerBlock() + 44)));
        for (String e : extra) {
            // A repeated --key=value would bind as a comma-separated list: replace the default instead.
            args.removeIf(a -> a.startsWith(e.substring(0, e.indexOf('=') + 1)));
            args.add(e);
        }
        return new SpringApplicationBuilder(KvCacheServiceApplication.class).run(args.toArray(String[]::new));
    }

    static LookupResponse lookup(ManagedChannel ch, List<ByteString> hashes) {
        return KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).lookup(LookupRequest
                .newBuilder().setModelFingerprint(ByteString.copyFrom(KvTestMesh.FINGERPRINT.bytes()))
                .setLayout(KvTestMesh.wire(BT)).addAllBlockHashes(hashes).build());
    }

    @Test
    void aRestartOnTheSameSsdDir_servesEveryBlockAcknowledgedBeforeTheShutdown_dramOnesIncluded() throws Exception {
        List<Block> seq = KvTestMesh.sequence(1, 3, BT, "t");
        try (ConfigurableApplicationContext first = run()) {
            ManagedChannel ch = KvTestMesh.channel(first.getBean(GrpcServerLifecycle.class).port());
            try {
                PutResponse r = KvTestMesh.put(ch, KvTestMesh.putMessages(seq, BT, "t")).get(1, TimeUnit.MINUTES);
                assertThat(r.getResultsList()).extracting(x -> x.getOutcome()).containsOnly(PutOutcome.PUT_OUTCOME_STORED);
                // DRAM holds 2 blocks: block 0 was demoted to SSD, blocks 1 and 2 are in DRAM only.
                assertThat(lookup(ch, hashes(seq)).getTiersList())
                        .containsExactly(Tier.TIER_SSD, Tier.TIER_DRAM, Tier.TIER_DRAM);
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
        // The lower tier reopened as computational storage: the same segment files.
        try (ConfigurableApplicationContext second = run("--moemesh.kvcache.csd=true")) {
            ManagedChannel ch = KvTestMesh.channel(second.getBean(GrpcServerLifecycle.class).port());
            try {
                assertThat(HealthGrpc.newBlockingStub(ch).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
                LookupResponse l = lookup(ch, hashes(seq));
                assertThat(l.getPresentBlocks()).isEqualTo(3);
                assertThat(l.getTiersList()).containsOnly(Tier.TIER_CSD);
                List<byte[]> got = KvTestMesh.get(ch, BT, hashes(seq));
                for (int i = 0; i < seq.size(); i++) {
                    assertThat(got.get(i)).isEqualTo(seq.get(i).payload());
                }
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void aSecondServiceOnTheSameSsdDir_refusesTheStart_namingThePropertyAndTheDirectory_untilTheFirstStops() {
        Path modelDir = ssdDir.resolve(KvTestMesh.FINGERPRINT.hex() + "-b" + BT);
        try (ConfigurableApplicationContext first = run()) {
            assertThatThrownBy(() -> run().close())
                    .hasStackTraceContaining("moemesh.kvcache.ssd-dir (MOEMESH_KVCACHE_SSD_DIR): the SSD directory "
                            + modelDir.toAbsolutePath() + " is in use by ");
        }
        // Stopped: its lock released, the directory serves the next start.
        run().close();
    }

    /**
     * kvcache.md: dram-bytes is "refused at startup above the larger of ¾ of the maximum heap and the maximum heap −
     * 256 MiB, naming the heap it needs". Reported as Spring Boot reports a setting it cannot bind, not as "Application
     * run failed" and the bean creation exceptions above the refusal.
     */
    @Test
    @ExtendWith(OutputCaptureExtension.class)
    void dramBytesAboveTheHeap_endsTheStartWithTheFailureReport_namingTheSetting_withoutAStackTrace(
            CapturedOutput output) {
        assertThatThrownBy(() -> run("--moemesh.kvcache.dram-bytes=" + (1L << 40)).close())
                .rootCause().isInstanceOf(SettingRefusedException.class);

        assertThat(output.getAll()).contains("APPLICATION FAILED TO START")
                .containsPattern("Description:\\s+moemesh\\.kvcache\\.dram-bytes \\(MOEMESH_KVCACHE_DRAM_BYTES\\): "
                        + (1L << 40) + " bytes \\(1048576 MiB\\) of blocks do not fit the JVM's max heap")
                .containsPattern("Action:\\s+Change moemesh\\.kvcache\\.dram-bytes \\(environment variable "
                        + "MOEMESH_KVCACHE_DRAM_BYTES\\)")
                .doesNotContain("Application run failed").doesNotContain("Caused by:");
        assertThat(output.getAll().lines().filter(line -> line.startsWith("\tat "))).as("stack frames").isEmpty();
    }

    @Test
    void aDramShareTooSmallForOneBlock_refusesTheStart_namingTheProperty() {
        assertThatThrownBy(() -> run("--moemesh.kvcache.dram-bytes=1000").close())
                .rootCause().hasMessageStartingWith("moemesh.kvcache.dram-bytes: model mixtral-tiny's share, 1000 "
                        + "bytes, cannot hold one block of " + LAYOUT.bytesPerBlock() + " bytes");
    }
}
