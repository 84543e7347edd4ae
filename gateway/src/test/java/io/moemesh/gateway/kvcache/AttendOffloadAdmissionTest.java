package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.BlockOffload.Outcome;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Attend offload against the real kvcache-service's gRPC service and tiers (in this JVM, mutual TLS) whose
 * admission policy declines every block it is asked about, as the default conversation policy declines the last
 * block of each chain a Lookup announced once it has learned that last blocks are rarely reused. The offload pins
 * its blocks right after storing them, so its Puts say {@code pin_next} and are not asked about; before, a declined
 * block was forgotten by the write-back, the Pin was never sent, and the long sequence stayed local for good.
 */
class AttendOffloadAdmissionTest {
    private static final ModelFingerprint MODEL = WriteBackTest.MODEL;
    @TempDir
    Path ssdDir;
    private LoopbackKvCache kv;
    private KvCacheClient client;
    private WriteBack writeBack;
    private AttendOffload offload;

    @BeforeEach
    void start() {
        kv = new LoopbackKvCache(ssdDir, "declining", (key, hint) -> false, List.of());
        client = kv.client;
        writeBack = kv.writeBack();
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(30), 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        kv.close();
    }

    @Test
    void anOffloadsBlocks_areStoredAndPinned_whereTheServicesAdmissionPolicyDeclinesOrdinaryWriteBacks()
            throws Exception {
        List<BlockContents> seq = WriteBackTest.chain(3, 1);
        // The sequence's blocks were written back as the cache releases them: declined, and forgotten.
        seq.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.declinedBlocks() == 3);

        Outcome offloaded = offload.offload(7, seq).get(60, TimeUnit.SECONDS);

        assertThat(offloaded).isEqualTo(Outcome.PINNED);
        for (BlockContents b : seq) {
            assertThat(kv.pinned(b)).as("block %d", b.chainPosition()).isTrue();
        }
        assertThat(offload.offloadedBlocks()).isEqualTo(3);
        assertThat(writeBack.declinedBlocks()).isEqualTo(3);
        assertThat(kv.store.stats().declined()).as("only the ordinary write-backs were asked").isEqualTo(3);
    }
}
