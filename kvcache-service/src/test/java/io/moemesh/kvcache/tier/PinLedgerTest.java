package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CancellationException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bounds of the pins kept under pin ids: what a model holds, and how many released ids it remembers. */
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
}
