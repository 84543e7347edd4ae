package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.engine.BlockPool;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The prefix cache's blocks as a plain object (1 layer, kv dim 1, 2-token blocks, 4 blocks), without sequences:
 * the moves between held, cached and free, eviction, write-back and import.
 */
class PrefixBlockPoolTest {
    private static final int B = 2;
    private static final ModelFingerprint MODEL = ModelFingerprint.of(new byte[32]);

    private final PrefixBlockPool blocks = new PrefixBlockPool(new BlockPool(1, 1, B, 4), MODEL);
    /** How many (imagined) block tables hold each block: what the audit checks the pool's counts against. */
    private final int[] tables = new int[4];

    /** Records what it is offered; wants every block it does not have yet. */
    private static final class Sink implements BlockSink {
        final Set<BlockHash> have = new HashSet<>();
        final List<BlockContents> got = new ArrayList<>();

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
    void everyBlockIsInExactlyOneState() {
        int held = blocks.audit(tables);
        assertThat(held + blocks.cachedBlocks() + blocks.freeBlocks()).isEqualTo(4);
    }

    private int allocate() {
        int b = blocks.allocate();
        tables[b]++;
        return b;
    }

    private void hold(int b) {
        blocks.hold(b);
        tables[b]++;
    }

    private void letGo(int b) {
        blocks.letGo(b);
        tables[b]--;
    }

    /** The hash of block {@code position} of a chain whose tokens are {@code 10·position + 1, + 2}. */
    private static BlockHash hash(BlockHash parent, int position) {
        return BlockHash.of(parent, tokens(position), 0, B, MODEL, "t");
    }

    private static int[] tokens(int position) {
        return new int[] {10 * position + 1, 10 * position + 2};
    }

    private void register(int block, BlockHash parent, int position) {
        assertThat(blocks.register(block, hash(parent, position), parent, tokens(position), "t", position)).isTrue();
    }

    @Test
    void aBlockWithAHash_isCachedWhenItsLastHolderLetsGo_oneWithoutIsFreed() {
        int a = allocate();
        int b = allocate();
        register(a, null, 0);
        hold(a);
        letGo(a);
        assertThat(blocks.cachedBlocks()).as("still held once").isZero();
        letGo(a);
        letGo(b);
        assertThat(blocks.cachedBlocks()).isOne();
        assertThat(blocks.freeBlocks()).isEqualTo(3);
        assertThat(blocks.usedBlocks()).isZero();
        assertThat(blocks.find(hash(null, 0))).isEqualTo(a);
        assertThat(blocks.hashOf(b)).isNull();
    }

    @Test
    void allocate_takesFreeBlocksFirst_thenEvictsTheLeastRecentlyLetGo_forgettingItsHash() {
        int b0 = allocate();
        int b1 = allocate();
        int b2 = allocate();
        register(b0, null, 0);
        register(b1, hash(null, 0), 1);
        register(b2, hash(hash(null, 0), 1), 2);
        letGo(b1);
        letGo(b0);
        letGo(b2);
        assertThat(blocks.lruOrder()).containsExactly(b1, b0, b2);
        assertThat(blocks.canAllocate(4)).isTrue();
        assertThat(blocks.canAllocate(5)).isFalse();

        int fresh = allocate();
        assertThat(fresh).isNotIn(b0, b1, b2);
        assertThat(blocks.lruOrder()).containsExactly(b1, b0, b2);
        assertThat(allocate()).isEqualTo(b1);
        assertThat(blocks.find(hash(hash(null, 0), 1))).isEqualTo(-1);
        assertThat(blocks.hashOf(b1)).isNull();
        assertThat(blocks.lruOrder()).containsExactly(b0, b2);
    }

    @Test
    void everyBlockHeld_allocateRefuses() {
        for (int i = 0; i < 4; i++) {
            allocate();
        }
        assertThat(blocks.canAllocate(1)).isFalse();
        assertThatThrownBy(blocks::allocate).isInstanceOf(IllegalStateException.class)
                .hasMessage("every KV block is held");
    }

    @Test
    void hold_takesACachedBlockOutOfTheLru_soItIsNeverEvictedWhileHeld() {
        int a = allocate();
        register(a, null, 0);
        letGo(a);
        hold(a);
        assertThat(blocks.cachedBlocks()).isZero();
        assertThat(blocks.usedBlocks()).isOne();
        for (int i = 0; i < 3; i++) {
            assertThat(allocate()).isNotEqualTo(a);
        }
        assertThat(blocks.canAllocate(1)).isFalse();
    }

    @Test
    void register_aSecondBlockUnderTheSameHash_keepsItsHashUnfindable_andAHashedBlockKeepsItsHash() {
        int a = allocate();
        int b = allocate();
        register(a, null, 0);
        assertThat(blocks.register(b, hash(null, 0), null, tokens(0), "t", 0)).as("not findable").isFalse();
        assertThat(blocks.hashOf(b)).as("its identity, for offload and write-back").isEqualTo(hash(null, 0));
        assertThat(blocks.position(b)).isZero();
        assertThat(blocks.register(a, hash(null, 5), null, tokens(5), "t", 0)).isFalse();
        assertThat(blocks.hashOf(a)).isEqualTo(hash(null, 0));
        assertThat(blocks.find(hash(null, 0))).isEqualTo(a);
        letGo(b);
        assertThat(blocks.freeBlocks()).as("the duplicate of a findable block: freed").isEqualTo(3);
        assertThat(blocks.hashOf(b)).isNull();
        assertThat(blocks.find(hash(null, 0))).as("the other's entry stays").isEqualTo(a);
        letGo(a);
        assertThat(blocks.lruOrder()).containsExactly(a);
    }

    @Test
    void aDuplicate_whoseFindableBlockWasEvicted_becomesTheCachedBlockOfItsHash_whenLetGo() {
        int a = allocate();
        int b = allocate();
        register(a, null, 0);
        blocks.register(b, hash(null, 0), null, tokens(0), "t", 0);
        letGo(a);
        for (int i = 0; i < 3; i++) {
            allocate(); // two free blocks, then a evicted
        }
        assertThat(blocks.find(hash(null, 0))).isEqualTo(-1);
        assertThat(blocks.hashOf(b)).isEqualTo(hash(null, 0));
        letGo(b);
        assertThat(blocks.find(hash(null, 0))).isEqualTo(b);
        assertThat(blocks.lruOrder()).containsExactly(b);
    }

    @Test
    void theSink_getsACopyWhenABlockBecomesCached_andWhenItIsEvicted_onlyWhileItWantsOne() {
        Sink sink = new Sink();
        blocks.setSink(sink);
        int a = allocate();
        blocks.pool().keys(0)[a * B] = 3.5f;
        blocks.pool().values(0)[a * B + 1] = -2f;
        register(a, null, 0);
        letGo(a);
        assertThat(sink.got).singleElement().satisfies(c -> {
            assertThat(c.hash()).isEqualTo(hash(null, 0));
            assertThat(c.parent()).isNull();
            assertThat(c.tokens()).containsExactly(tokens(0));
            assertThat(c.tenant()).isEqualTo("t");
            assertThat(c.chainPosition()).isZero();
            assertThat(c.keys()[0]).containsExactly(3.5f, 0f);
            assertThat(c.values()[0]).containsExactly(0f, -2f);
        });
        // evicted: offered again, but the sink has it already
        for (int i = 0; i < 4; i++) {
            allocate();
        }
        assertThat(blocks.find(hash(null, 0))).isEqualTo(-1);
        assertThat(sink.got).hasSize(1);
    }

    @Test
    void anEvictedBlock_isOfferedBeforeItsHashIsForgotten() {
        int a = allocate();
        register(a, null, 0);
        letGo(a); // no sink yet
        Sink sink = new Sink();
        blocks.setSink(sink);
        for (int i = 0; i < 4; i++) {
            allocate();
        }
        assertThat(sink.got).extracting(BlockContents::hash).containsExactly(hash(null, 0));
    }

    private static List<BlockContents> chain(int n) {
        List<BlockContents> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            BlockHash h = hash(parent, i);
            out.add(new BlockContents(h, parent, tokens(i), "t", i, new float[][] {{i, i + 0.5f}},
                    new float[][] {{-i, -i - 0.5f}}));
            parent = h;
        }
        return out;
    }

    @Test
    void importChain_makesTheBlocksCached_withTheirKeys_withoutOfferingThemBackToTheSink() {
        Sink sink = new Sink();
        blocks.setSink(sink);
        List<BlockContents> chain = chain(3);
        assertThat(blocks.importChain(chain)).isEqualTo(3);
        assertThat(blocks.cachedBlocks()).isEqualTo(3);
        assertThat(blocks.importedBlocks()).isEqualTo(3);
        int b2 = blocks.find(chain.get(2).hash());
        assertThat(blocks.pool().copyKeys(b2)[0]).containsExactly(2f, 2.5f);
        assertThat(blocks.position(b2)).isEqualTo(2);
        assertThat(blocks.lruOrder()).as("tail first").startsWith(b2);
        assertThat(sink.got).isEmpty();
        assertThat(blocks.importChain(chain)).as("present blocks are kept").isEqualTo(3);
        assertThat(blocks.importedBlocks()).isEqualTo(3);
    }

    @Test
    void importChain_stopsWhereRoomEnds_neverEvictingItsOwnBlocks() {
        allocate();
        allocate();
        List<BlockContents> chain = chain(3);
        assertThat(blocks.importChain(chain)).isEqualTo(2);
        assertThat(blocks.find(chain.get(0).hash())).isNotNegative();
        assertThat(blocks.find(chain.get(2).hash())).isEqualTo(-1);
    }

    @Test
    void importChain_neverEvictsTheCachedPrefixItContinues_itImportsNothingWhenOnlyThatPrefixIsReclaimable() {
        List<BlockContents> c1 = chain(1);
        assertThat(blocks.importChain(c1)).isOne();
        int c0 = blocks.find(c1.getFirst().hash());
        for (int i = 0; i < 3; i++) {
            allocate();
        }
        assertThat(blocks.lruOrder()).as("free list empty, only the prefix reclaimable").containsExactly(c0);

        assertThat(blocks.importChain(chain(2).subList(1, 2))).isZero();

        assertThat(blocks.find(c1.getFirst().hash())).as("the prefix is still there").isEqualTo(c0);
        assertThat(blocks.lruOrder()).containsExactly(c0);
    }

    @Test
    void importChain_continuingACachedPrefix_putsItsOwnBlocksBeforeThePrefixInTheLru() {
        List<BlockContents> c3 = chain(3);
        assertThat(blocks.importChain(c3.subList(0, 1))).isOne();
        int c0 = blocks.find(c3.getFirst().hash());
        int a = allocate();

        assertThat(blocks.importChain(c3.subList(1, 3))).isEqualTo(2);

        int c1 = blocks.find(c3.get(1).hash());
        int c2 = blocks.find(c3.get(2).hash());
        assertThat(blocks.lruOrder()).as("tail first, block 0 evicted last").containsExactly(c2, c1, c0);
        letGo(a);
    }

    @Test
    void importChain_refusesABrokenChain_beforeWritingAnything() {
        List<BlockContents> chain = chain(3);
        assertThatThrownBy(() -> blocks.importChain(List.of(chain.get(0), chain.get(2))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not continue the chain");
        assertThatThrownBy(() -> blocks.importChain(List.of(chain.get(1))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("which is not in the cache");
        assertThat(blocks.cachedBlocks()).isZero();
        assertThat(blocks.freeBlocks()).isEqualTo(4);
    }
}
