package io.moemesh.model.kv;

import static io.moemesh.model.kv.KvDriver.B;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The prefix cache's seams to another KV tier, as plain objects (4-token blocks): the sink gets a copy of each full
 * block when it becomes cached and when it is evicted (only the ones it wants), and imported blocks are found by
 * the next admission and hold exactly the keys the sequence would have computed.
 */
class BlockTransferTest {
    private final KvDriver kv = new KvDriver(8);
    private final Recorder sink = new Recorder();

    /** Keeps every copy it is handed; wants the hashes not in {@link #have}. */
    private static final class Recorder implements BlockSink {
        final List<BlockContents> got = new ArrayList<>();
        final Set<BlockHash> have = new HashSet<>();

        @Override
        public boolean wants(BlockHash hash) {
            return !have.contains(hash);
        }

        @Override
        public void accept(BlockContents block) {
            got.add(block);
            have.add(block.hash());
        }
    }

    @AfterEach
    void accounted() {
        kv.assertAccounted();
    }

    @Test
    void aFinishedSequencesFullBlocks_areHandedToTheSink_withTheirChainAndKeys() {
        kv.cache.setBlockSink(sink);
        int[] p = KvDriver.tokens(10, 1);
        kv.prefill(1, p, "t");
        assertThat(sink.got).as("nothing while the sequence holds its blocks").isEmpty();
        kv.cache.release(1);
        // two full blocks become cached, tail first; the partial third is never offered
        assertThat(sink.got).hasSize(2);
        List<BlockHash> chain = kv.cache.prefixChain(p, "t", 2);
        BlockContents b1 = sink.got.get(0);
        BlockContents b0 = sink.got.get(1);
        assertThat(b0.hash()).isEqualTo(chain.get(0));
        assertThat(b0.parent()).isNull();
        assertThat(b1.hash()).isEqualTo(chain.get(1));
        assertThat(b1.parent()).isEqualTo(chain.get(0));
        assertThat(b1.chainPosition()).isEqualTo(1);
        assertThat(b1.tokens()).containsExactly(p[4], p[5], p[6], p[7]);
        assertThat(b1.tenant()).isEqualTo("t");
        for (int i = 0; i < B; i++) {
            assertThat(b1.keys()[0][i]).isEqualTo(KvDriver.marker(p, B + i));
        }
    }

    @Test
    void anEvictedBlock_isOfferedAgain_onlyWhenTheSinkStillWantsIt() {
        int[] p = KvDriver.tokens(9, 2);
        kv.prefill(1, p, "t");
        kv.cache.release(1); // no sink yet: nothing offered
        kv.cache.setBlockSink(sink);
        sink.have.add(kv.cache.prefixChain(p, "t", 1).getFirst());
        // 8 blocks: 2 cached; a 32-position sequence takes the 6 free ones and then evicts both
        kv.prefill(2, KvDriver.tokens(31, 3), "t");
        assertThat(sink.got).extracting(BlockContents::hash).containsExactly(kv.cache.prefixChain(p, "t", 2).get(1));
        kv.cache.release(2);
    }

    @Test
    void importedBlocks_areFoundByTheNextAdmission_andHoldTheSequencesOwnKeys() {
        int[] p = KvDriver.tokens(14, 4);
        KvDriver source = new KvDriver(8);
        source.cache.setBlockSink(sink);
        source.prefill(1, p, "t");
        source.cache.release(1);
        List<BlockContents> chain = new ArrayList<>(sink.got.reversed());

        assertThat(kv.cache.importBlocks(chain)).isEqualTo(3);
        assertThat(kv.cache.cachedBlocks()).isEqualTo(3);
        assertThat(kv.cache.importedBlocks()).isEqualTo(3);
        assertThat(kv.prefill(2, p, "t")).isEqualTo(12);
        kv.assertHolds(2, p, 14);
        // importing what is there already changes nothing
        assertThat(kv.cache.importBlocks(chain)).isEqualTo(3);
        assertThat(kv.cache.importedBlocks()).isEqualTo(3);
        kv.cache.release(2);
    }

    @Test
    void anImportIntoAFullPool_stopsWhereRoomEnds_andNeverEvictsItsOwnChain() {
        int[] p = KvDriver.tokens(17, 5);
        KvDriver source = new KvDriver(8);
        source.cache.setBlockSink(sink);
        source.prefill(1, p, "t");
        source.cache.release(1);
        List<BlockContents> chain = new ArrayList<>(sink.got.reversed());
        kv.prefill(9, KvDriver.tokens(24, 6), "t"); // 6 of 8 blocks held
        assertThat(kv.cache.importBlocks(chain)).isEqualTo(2);
        assertThat(kv.cache.presentBlocks(kv.cache.prefixChain(p, "t", 4))).isEqualTo(2);
        kv.cache.release(9);
    }

    @Test
    void anImport_refusesABlockThatDoesNotHashToItsTokens_orDoesNotContinueTheChain() {
        int[] p = KvDriver.tokens(9, 7);
        KvDriver source = new KvDriver(8);
        source.cache.setBlockSink(sink);
        source.prefill(1, p, "t");
        source.cache.release(1);
        BlockContents b0 = sink.got.get(1);
        BlockContents b1 = sink.got.get(0);
        int[] other = b0.tokens().clone();
        other[0]++;
        BlockContents forged = new BlockContents(b0.hash(), null, other, "t", 0, b0.keys(), b0.values());
        assertThatThrownBy(() -> kv.cache.importBlocks(List.of(forged))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("does not match");
        assertThatThrownBy(() -> kv.cache.importBlocks(List.of(b1))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not in the cache");
        BlockContents otherTenant = new BlockContents(b0.hash(), null, b0.tokens(), "u", 0, b0.keys(), b0.values());
        assertThatThrownBy(() -> kv.cache.importBlocks(List.of(otherTenant)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(kv.cache.cachedBlocks()).isZero();
    }

    @Test
    void aDisabledCache_importsNothing() {
        KvDriver off = new KvDriver(8, false);
        int[] p = KvDriver.tokens(9, 8);
        KvDriver source = new KvDriver(8);
        source.cache.setBlockSink(sink);
        source.prefill(1, p, "t");
        source.cache.release(1);
        assertThat(off.cache.importBlocks(sink.got.reversed())).isZero();
    }
}
