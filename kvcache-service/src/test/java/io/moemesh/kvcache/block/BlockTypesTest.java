package io.moemesh.kvcache.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BlockTypesTest {
    private static final KvLayout LAYOUT = new KvLayout(2, 2, 4, 4);

    @Test
    void blockKey_equalBytes_equalKeys_andHexToString() {
        byte[] b = new byte[32];
        b[0] = (byte) 0xab;
        BlockKey k = BlockKey.of(b);
        b[1] = 1; // the key copied the bytes
        assertThat(k).isEqualTo(BlockKey.of(HexFormat.of().parseHex("ab" + "00".repeat(31))));
        assertThat(k.hashCode()).isEqualTo(BlockKey.of(k.bytes()).hashCode());
        assertThat(k.toString()).isEqualTo("ab" + "00".repeat(31));
        assertThat(k).isNotEqualTo(BlockKey.of(b));
    }

    @Test
    void blockKey_ofBlockHash_hasTheSameBytes() {
        ModelFingerprint fp = ModelFingerprint.of(new byte[32]);
        BlockHash h = BlockHash.of(null, new int[] {1, 2, 3, 4}, 0, 4, fp, "");
        assertThat(BlockKey.of(h).bytes()).isEqualTo(h.bytes());
        assertThat(BlockKey.of(h).toString()).isEqualTo(h.hex());
    }

    @ParameterizedTest
    @CsvSource({"0", "31", "33"})
    void blockKey_refused_unless32Bytes(int length) {
        assertThatThrownBy(() -> BlockKey.of(new byte[length]))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("block_hash").hasMessageContaining("32 bytes, got " + length);
    }

    @Test
    void layout_sizes_followTheShape() {
        assertThat(LAYOUT.floatsPerTensor()).isEqualTo(2 * 4 * 4);
        assertThat(LAYOUT.floatsPerBlock()).isEqualTo(2 * 2 * 32);
        assertThat(LAYOUT.bytesPerBlock()).isEqualTo(512);
        assertThat(LAYOUT.rowsPerBlock()).isEqualTo(2 * 2 * 2 * 4);
    }

    @Test
    void layout_offsets_areLayerThenKvThenHeadThenTokenThenDim() {
        assertThat(LAYOUT.offset(0, false, 0, 0, 0)).isZero();
        assertThat(LAYOUT.offset(0, false, 0, 0, 1)).isEqualTo(1);
        assertThat(LAYOUT.offset(0, false, 0, 1, 0)).isEqualTo(4);
        assertThat(LAYOUT.offset(0, false, 1, 0, 0)).isEqualTo(16);
        assertThat(LAYOUT.offset(0, true, 0, 0, 0)).isEqualTo(32);
        assertThat(LAYOUT.offset(1, false, 0, 0, 0)).isEqualTo(64);
        assertThat(LAYOUT.offset(1, true, 1, 3, 3)).isEqualTo(127);
    }

    @Test
    void layout_id_differsForEveryField_andIsStable() {
        long id = LAYOUT.id();
        assertThat(new KvLayout(2, 2, 4, 4).id()).isEqualTo(id);
        assertThat(new KvLayout(3, 2, 4, 4).id()).isNotEqualTo(id);
        assertThat(new KvLayout(2, 1, 4, 4).id()).isNotEqualTo(id);
        assertThat(new KvLayout(2, 2, 8, 4).id()).isNotEqualTo(id);
        assertThat(new KvLayout(2, 2, 4, 16).id()).isNotEqualTo(id);
    }

    @ParameterizedTest
    @CsvSource({"0, 2, 4, 4, layers", "2, 0, 4, 4, kvHeads", "2, 2, -1, 4, headDim", "2, 2, 4, 0, blockTokens"})
    void layout_refused_nonPositiveField(int layers, int kvHeads, int headDim, int blockTokens, String field) {
        assertThatThrownBy(() -> new KvLayout(layers, kvHeads, headDim, blockTokens))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith(field + " must be positive");
    }

    @Test
    void layout_refused_whenABlockWouldNotFitOneBuffer() {
        assertThatThrownBy(() -> new KvLayout(1000, 64, 128, 1024))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("more than one buffer holds");
    }

    @Test
    void block_refused_whenSizeDoesNotMatchTheLayout() {
        BlockKey k = BlockKey.of(new byte[32]);
        assertThatThrownBy(() -> KvBlock.of(k, LAYOUT, new float[127]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 128 floats")
                .hasMessageContaining("got 127");
        assertThatThrownBy(() -> KvBlock.copyOf(k, LAYOUT, ByteBuffer.allocate(513)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 512 bytes, got 513");
    }

    @Test
    void block_isImmutable_andItsTensorsAreViewsInLayoutOrder() {
        float[] f = new float[128];
        for (int i = 0; i < f.length; i++) {
            f[i] = i;
        }
        KvBlock b = KvBlock.of(BlockKey.of(new byte[32]), LAYOUT, f);
        f[0] = 99; // copied
        assertThat(b.floats().get(0)).isZero();
        assertThat(b.data().isReadOnly()).isTrue();
        assertThat(b.tensor(1, true).get(0)).isEqualTo(LAYOUT.tensorOffset(1, true));
        assertThat(b.tensor(1, true).remaining()).isEqualTo(32);
        assertThat(b.toFloats()[127]).isEqualTo(127f);
        ByteBuffer le = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        le.asFloatBuffer().put(b.toFloats());
        assertThat(KvBlock.copyOf(b.key(), LAYOUT, le).sameContent(b)).isTrue();
        assertThatThrownBy(() -> b.tensor(2, false)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("layer must be in [0, 2)");
    }

    @Test
    void arrayView_ofAHeapBlock_exposesItsBytesArray_atTheBlocksOffset_withoutCopying() {
        byte[] backing = new byte[512 + 100];
        for (int i = 0; i < backing.length; i++) {
            backing[i] = (byte) i;
        }
        // a block owning bytes 100..611 of a larger array (as a record read into one buffer)
        KvBlock b = KvBlock.wrapOwned(BlockKey.of(new byte[32]), LAYOUT, ByteBuffer.wrap(backing, 100, 512));
        ByteBuffer v = b.arrayView();
        assertThat(v.hasArray()).isTrue();
        assertThat(v.array()).isSameAs(backing);
        assertThat(v.arrayOffset()).isEqualTo(100);
        assertThat(v.position()).isZero();
        assertThat(v.remaining()).isEqualTo(512);
        assertThat(v).isEqualTo(b.data());
        assertThat(b.data().isReadOnly()).as("data() stays read-only").isTrue();
        KvBlock copied = KvBlock.of(b.key(), LAYOUT, b.toFloats());
        assertThat(copied.arrayView()).isEqualTo(b.data());
    }

    @Test
    void arrayView_ofABlockWithoutAnAccessibleArray_isItsReadOnlyData() {
        ByteBuffer direct = ByteBuffer.allocateDirect(512);
        KvBlock d = KvBlock.wrapOwned(BlockKey.of(new byte[32]), LAYOUT, direct);
        assertThat(d.arrayView().hasArray()).isFalse();
        assertThat(d.arrayView().isReadOnly()).isTrue();
        KvBlock ro = KvBlock.wrapOwned(BlockKey.of(new byte[32]), LAYOUT, ByteBuffer.allocate(512).asReadOnlyBuffer());
        assertThat(ro.arrayView().isReadOnly()).isTrue();
    }
}
