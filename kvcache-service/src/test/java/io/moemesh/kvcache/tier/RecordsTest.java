package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.policy.AccessHint;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The read path's fused check-and-copy ({@link Records#verifyInto}) accepts exactly what {@link Records#verify}
 * accepts, over payloads of several CRC steps, and the SSD tier's reads reuse their buffers.
 */
class RecordsTest {
    @TempDir
    Path dir;

    /** A sealed record of {@code payload} bytes in a direct buffer larger than the record, as the pool hands out. */
    private static ByteBuffer record(int payload, long seed) {
        byte[] p = new byte[payload];
        new Random(seed).nextBytes(p);
        ByteBuffer rec = ByteBuffer.allocate(Records.HEADER_BYTES + payload);
        Records.begin(rec, key(seed), payload);
        rec.put(p);
        Records.seal(rec);
        ByteBuffer direct = ByteBuffer.allocateDirect(rec.capacity() + 100);
        direct.put(rec.duplicate()).flip();
        return direct;
    }

    @Test
    void verifyInto_acceptsAnIntactRecord_andCopiesItsPayload_acrossSeveralSteps() {
        int payload = 3 * Records.VERIFY_STEP_BYTES + 123;
        ByteBuffer rec = record(payload, 1);
        byte[] out = new byte[payload];

        assertThat(Records.verifyInto(rec, payload, out)).isEqualTo(key(1));
        assertThat(ByteBuffer.wrap(out)).isEqualTo(rec.duplicate().position(Records.HEADER_BYTES));
    }

    @Test
    void verifyInto_refusesAFlippedByte_inTheKey_theLength_orAnyStepOfThePayload() {
        int payload = 2 * Records.VERIFY_STEP_BYTES + 7;
        for (int at : new int[] {0, 5, 37, 41, Records.HEADER_BYTES, Records.HEADER_BYTES + Records.VERIFY_STEP_BYTES,
                Records.HEADER_BYTES + payload - 1}) {
            ByteBuffer rec = record(payload, 2);
            rec.put(at, (byte) (rec.get(at) ^ 0x10));
            assertThat(Records.verifyInto(rec, payload, new byte[payload])).as("byte %d flipped", at).isNull();
        }
    }

    @Test
    void verifyInto_refusesARecordOfAnotherLength() {
        ByteBuffer rec = record(100, 3);
        assertThat(Records.verifyInto(rec, 99, new byte[99])).isNull();
        assertThat(Records.verifyInto(rec.limit(rec.limit() - 1), 100, new byte[100])).isNull();
    }

    @Test
    void ssdGets_reuseOneReadBuffer_perReader_notOnePerBlock() {
        try (SsdTier ssd = SsdTierTest.open(SsdConfig.defaults(dir, 100L * RECORD_BYTES))) {
            for (int i = 0; i < 20; i++) {
                ssd.put(block(i));
            }
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 20; i++) {
                    KvBlock b = ssd.get(key(i), AccessHint.NONE).orElseThrow();
                    assertThat(b.sameContent(block(i))).isTrue();
                    assertThat(b.sizeBytes()).isEqualTo(BLOCK_BYTES);
                }
            }
            assertThat(ssd.idleReadBuffers()).isEqualTo(1);
        }
    }
}
