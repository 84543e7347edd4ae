package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The physical pool as a plain object: 2 layers, kv dim 3, 2-token blocks. */
class BlockPoolTest {
    private final BlockPool pool = new BlockPool(2, 3, 2, 4);

    @Test
    void take_handsOutEveryBlockOnce_untilTheFreeListIsEmpty_thenRefuses() {
        Set<Integer> taken = new HashSet<>();
        for (int i = 0; i < 4; i++) {
            int b = pool.take();
            assertThat(taken.add(b)).as("block %d handed out twice", b).isTrue();
            assertThat(pool.holders(b)).isOne();
        }
        assertThat(taken).containsExactlyInAnyOrder(0, 1, 2, 3);
        assertThat(pool.freeBlocks()).isZero();
        assertThatThrownBy(pool::take).isInstanceOf(IllegalStateException.class).hasMessage("no free KV block left");
    }

    @Test
    void drop_saysWhenTheLastHolderLetGo_butOnlyFreeReturnsTheBlockToTheFreeList() {
        int b = pool.take();
        pool.hold(b);
        assertThat(pool.drop(b)).isFalse();
        assertThat(pool.drop(b)).isTrue();
        // nobody holds it, yet it is not free: a prefix cache may keep it, findable by its hash
        assertThat(pool.isFree(b)).isFalse();
        assertThat(pool.freeBlocks()).isEqualTo(3);
        pool.hold(b);
        assertThat(pool.drop(b)).isTrue();
        pool.free(b);
        assertThat(pool.isFree(b)).isTrue();
        assertThat(pool.freeBlocks()).isEqualTo(4);
        assertThat(pool.take()).as("the most recently freed block first").isEqualTo(b);
    }

    @Test
    void aDoubleFree_aFreeOfAHeldBlock_aDropOfAnUnheldOne_andAHoldOfAFreeOne_areRefused() {
        int b = pool.take();
        assertThatThrownBy(() -> pool.free(b)).isInstanceOf(IllegalStateException.class)
                .hasMessage("block " + b + " cannot be freed: held by 1 block tables");
        pool.drop(b);
        pool.free(b);
        assertThatThrownBy(() -> pool.free(b)).isInstanceOf(IllegalStateException.class)
                .hasMessage("block " + b + " cannot be freed: already free");
        assertThatThrownBy(() -> pool.drop(b)).isInstanceOf(IllegalStateException.class)
                .hasMessage("block " + b + " is held by no block table");
        assertThatThrownBy(() -> pool.hold(b)).isInstanceOf(IllegalStateException.class)
                .hasMessage("block " + b + " is free: take it instead");
        assertThat(pool.audit(new int[4])).isZero();
    }

    @Test
    void copiesAndWrites_coverExactlyOneBlockOfEveryLayer() {
        for (int l = 0; l < 2; l++) {
            for (int i = 0; i < pool.keys(l).length; i++) {
                pool.keys(l)[i] = 100 * l + i;
                pool.values(l)[i] = -(100 * l + i);
            }
        }
        assertThat(pool.blockFloats()).isEqualTo(6);
        float[][] k = pool.copyKeys(1);
        assertThat(k[0]).containsExactly(6, 7, 8, 9, 10, 11);
        assertThat(k[1]).containsExactly(106, 107, 108, 109, 110, 111);
        assertThat(pool.copyValues(1)[1]).containsExactly(-106, -107, -108, -109, -110, -111);

        pool.write(2, k, pool.copyValues(1));
        assertThat(pool.copyKeys(2)).isDeepEqualTo(k);
        assertThat(pool.keys(0)[11]).as("block 1 untouched").isEqualTo(11);
        assertThat(pool.keys(0)[18]).as("block 3 untouched").isEqualTo(18);
    }

    @Test
    void write_refusesArraysOfAnotherShape_namingTheLayer() {
        float[][] ok = {new float[6], new float[6]};
        float[][] shortLayer = {new float[6], new float[5]};
        assertThatThrownBy(() -> pool.write(0, shortLayer, ok)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("layer 1: 5 key and 6 value floats, a block holds 6");
        assertThatThrownBy(() -> pool.write(0, new float[][] {new float[6]}, ok))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("1 layers of keys and 2 of values for a pool of 2 layers");
    }

    @Test
    void audit_countsHeldBlocks_andCatchesACountTheTablesDisagreeWith() {
        int a = pool.take();
        int b = pool.take();
        pool.hold(b);
        int[] tables = new int[4];
        tables[a] = 1;
        tables[b] = 2;
        assertThat(pool.audit(tables)).isEqualTo(2);
        tables[b] = 1;
        assertThatThrownBy(() -> pool.audit(tables)).isInstanceOf(IllegalStateException.class)
                .hasMessage("block " + b + ": 1 tables hold it, count says 2");
    }

    @ParameterizedTest(name = "layers {0}, kv dim {1}, block {2}, blocks {3}")
    @CsvSource({"0, 1, 1, 1", "1, 0, 1, 1", "1, 1, 0, 1", "1, 1, 1, 0", "-1, 1, 1, 1"})
    void aPoolWithoutPositiveSizes_isRefused(int layers, int kvDim, int blockTokens, int blocks) {
        assertThatThrownBy(() -> new BlockPool(layers, kvDim, blockTokens, blocks))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("KV cache needs positive layers, kv dim, block size and block count");
    }

    @Test
    void aPoolLargerThanOneArrayPerLayer_isRefusedBeforeAllocating() {
        assertThatThrownBy(() -> new BlockPool(1, 1024, 16, 1 << 20)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("a KV cache of 1048576 blocks exceeds one array per layer");
    }
}
