package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.model.kv.BlockContents;
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
 * An Attend offload of more blocks than the write-back remembers ({@code remembered-blocks}) against the real
 * kvcache-service (in this JVM, mutual TLS). The offload knows its blocks are stored from its own write's
 * acknowledgements; before, it asked the write-back's bounded memory once they were settled, found its first blocks
 * forgotten, and failed every time without a word (the sequence stayed local).
 */
class AttendOffloadRememberedTest {
    @TempDir
    Path ssdDir;
    private LoopbackKvCache kv;
    private WriteBack writeBack;
    private AttendOffload offload;

    @BeforeEach
    void start() {
        kv = new LoopbackKvCache(ssdDir, "tiny", AdmissionPolicy.ADMIT_ALL, List.of());
        // remembered-blocks 2: an offload of 6 blocks overflows it
        writeBack = new WriteBack(kv.client, 64, 64, Duration.ofSeconds(10), 2, Duration.ofSeconds(5));
        offload = new AttendOffload(kv.client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(30), 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        kv.close();
    }

    @Test
    void anOffloadLargerThanRememberedBlocks_isStoredAndPinned() throws Exception {
        List<BlockContents> seq = WriteBackTest.chain(6, 60);

        Outcome offloaded = offload.offload(7, seq).get(60, TimeUnit.SECONDS);

        assertThat(offloaded).isEqualTo(Outcome.PINNED);
        assertThat(seq).allMatch(kv::pinned);
        assertThat(offload.offloadedBlocks()).isEqualTo(6);
    }
}
