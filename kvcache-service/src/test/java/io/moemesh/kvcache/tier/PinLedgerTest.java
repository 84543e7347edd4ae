package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CancellationException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bounds of the pins kept under pin ids (what a model holds, how many released ids it remembers), and a Pin whose
 * store fails.
 */
class PinLedgerTest {
    @TempDir
    Path dir;
    private TieredKvStore store;

    @BeforeEach
    void open() {
        store = new TieredKvStore(LAYOUT, 8L * BLOCK_BYTES, new LruPolicy(),
                SsdTierTest.open(SsdConfig.defaults(dir, 8L * RECORD_BYTES)), AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
        for (int i = 1; i <= 4; i++) {
            store.put(block(i));
        }
    }

    @AfterEach
    void close() {
        store.close();
    }

    private static byte[] id(int i) {
        byte[] b = new byte[PinLedger.PIN_ID_BYTES];
        b[3] = (byte) i;
        return b;
    }

    @Test
    void aPin_pastTheBlocksHeldUnderPinIds_isRefused_pinningNothing_untilAnIdIsUnpinned() {
        PinLedger ledger = new PinLedger(store, 3, 16);
        ledger.pin(id(1), List.of(key(1), key(2)), () -> false);

        assertThatThrownBy(() -> ledger.pin(id(2), List.of(key(3), key(4)), () -> false))
                .isInstanceOf(PinLedger.LimitException.class)
                .hasMessage("pin_id: 2 blocks are held under pin ids of this model and this Pin names 2, past the "
                        + "most the service keeps (3); nothing pinned");
        assertThat(store.isPinned(key(3))).isFalse();

        assertThat(ledger.unpin(id(1))).isEqualTo(2);
        assertThat(ledger.heldBlocks()).isZero();
        assertThat(ledger.pin(id(2), List.of(key(3), key(4)), () -> false)).containsExactly(true, true);
    }

    /**
     * Pin id 1 pinned block 11 on the SSD; a read found the record's CRC32C bad and dropped it, its pins with it; the
     * block was put again and pin id 2 pinned it. An Unpin of id 1 must not release id 2's pin (before, the ledger
     * released one pin of each block it had pinned, whichever Pin's it was).
     */
    @Test
    void anUnpinById_ofABlockDroppedForABadChecksumAndPinnedAnewByAnotherId_releasesNothingOfTheOthersPin(
            @TempDir Path other) throws IOException {
        try (TieredKvStore s = new TieredKvStore(LAYOUT, BLOCK_BYTES, new LruPolicy(),
                SsdTierTest.open(SsdConfig.defaults(other, 4L * RECORD_BYTES)), AdmissionPolicy.ADMIT_ALL,
                System::nanoTime)) {
            PinLedger ledger = new PinLedger(s);
            s.put(block(11));
            s.put(block(12)); // 11 demoted to the SSD tier
            assertThat(ledger.pin(id(1), List.of(key(11)), () -> false)).containsExactly(true);
            RecordExtent e = s.lower().locate(key(11), AccessHint.NONE, Long.MAX_VALUE).orElseThrow();
            SsdCrashTest.flip(e.path(), e.offset() + 44 + 100);
            assertThat(s.get(key(11))).as("dropped for its CRC32C").isEmpty();
            s.put(block(11));
            assertThat(ledger.pin(id(2), List.of(key(11)), () -> false)).containsExactly(true);

            assertThat(ledger.unpin(id(1))).as("its pin died with the dropped copy").isZero();

            assertThat(s.isPinned(key(11))).as("id 2's pin").isTrue();
            assertThat(ledger.unpin(id(2))).isEqualTo(1);
            assertThat(s.isPinned(key(11))).isFalse();
        }
    }

    /** Each would count 0 against the bound yet stay live under its id: distinct ids grew the ledger unbounded. */
    @Test
    void aPinWithAnId_andNoBlocks_isRefusedNamingTheField_andHoldsNothing() {
        PinLedger ledger = new PinLedger(store, 3, 16);
        for (int i = 1; i <= 100; i++) {
            int n = i;
            assertThatThrownBy(() -> ledger.pin(id(n), List.of(), () -> false))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("block_hashes: a Pin with a pin_id must name at least one block hash");
        }
        assertThat(ledger.liveIds()).isZero();
        assertThat(ledger.pin(null, List.of(), () -> false)).as("without an id nothing is kept").isEmpty();
        assertThat(ledger.liveIds()).isZero();
    }

    @Test
    void releasedIds_areRememberedUpToTheBound_theOldestForgottenFirst() {
        PinLedger ledger = new PinLedger(store, 16, 2);
        ledger.unpin(id(1));
        ledger.unpin(id(2));
        ledger.unpin(id(3)); // forgets id 1

        assertThatThrownBy(() -> ledger.pin(id(3), List.of(key(1)), () -> false))
                .isInstanceOf(PinLedger.AbortedException.class);
        assertThat(ledger.pin(id(1), List.of(key(1)), () -> false)).as("forgotten: pins as a new id")
                .containsExactly(true);
    }

    @Test
    void aPin_cancelledBeforeItStarts_pinsNothing_andHoldsNothing() {
        PinLedger ledger = new PinLedger(store);

        assertThatThrownBy(() -> ledger.pin(id(1), List.of(key(1)), () -> true))
                .isInstanceOf(CancellationException.class);
        assertThat(store.isPinned(key(1))).isFalse();
        assertThat(ledger.heldBlocks()).isZero();
    }

    /**
     * The store's pin throws on the second block (its SSD tier fails): the first block's pin is released and the id
     * forgotten. Before, the id stayed live with no answer for ever: its pin held, its blocks counted against the
     * bound, a retry ABORTED ("still running") and an Unpin of it releasing nothing.
     */
    @Test
    void aPin_whoseStoreThrows_releasesWhatItPinned_forgetsItsId_andRestoresTheCount() {
        FailingPins lower = new FailingPins(SsdTierTest.open(SsdConfig.defaults(dir.resolve("failing"),
                8L * RECORD_BYTES)));
        try (TieredKvStore failing = new TieredKvStore(LAYOUT, BLOCK_BYTES, new LruPolicy(), lower,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            failing.put(block(1));
            failing.put(block(2)); // demotes block 1 into the failing tier
            PinLedger ledger = new PinLedger(failing);
            lower.failing = key(1);

            assertThatThrownBy(() -> ledger.pin(id(9), List.of(key(2), key(1)), () -> false))
                    .isInstanceOf(UncheckedIOException.class);
            assertThatThrownBy(() -> ledger.pin(null, List.of(key(2), key(1)), () -> false))
                    .isInstanceOf(UncheckedIOException.class);

            assertThat(failing.isPinned(key(2))).as("the first block's pins were released").isFalse();
            assertThat(ledger.heldBlocks()).isZero();
            assertThat(ledger.unpin(id(9))).as("nothing left under the id").isZero();
            lower.failing = null;
            assertThat(ledger.pin(id(10), List.of(key(2), key(1)), () -> false)).containsExactly(true, true);
        }
    }

    @Test
    void aPin_whoseStoreThrows_canBeRetriedUnderItsId() {
        FailingPins lower = new FailingPins(SsdTierTest.open(SsdConfig.defaults(dir.resolve("retried"),
                8L * RECORD_BYTES)));
        try (TieredKvStore failing = new TieredKvStore(LAYOUT, BLOCK_BYTES, new LruPolicy(), lower,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            failing.put(block(1));
            failing.put(block(2));
            PinLedger ledger = new PinLedger(failing);
            lower.failing = key(1);
            assertThatThrownBy(() -> ledger.pin(id(11), List.of(key(2), key(1)), () -> false))
                    .isInstanceOf(UncheckedIOException.class);
            lower.failing = null;

            assertThat(ledger.pin(id(11), List.of(key(2), key(1)), () -> false)).containsExactly(true, true);
            assertThat(ledger.unpin(id(11))).isEqualTo(2);
            assertThat(List.of(key(1), key(2))).noneMatch(failing::isPinned);
        }
    }

    /** A lower tier whose pin of {@link #failing} throws, as a tier whose disk fails would. */
    private static final class FailingPins extends ForwardingKvTier {
        volatile BlockKey failing;

        FailingPins(KvTier delegate) {
            super(delegate);
        }

        @Override
        public boolean pin(BlockKey key) {
            if (key.equals(failing)) {
                throw new UncheckedIOException(new IOException("the test's tier failed"));
            }
            return super.pin(key);
        }
    }
}
