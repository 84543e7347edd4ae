package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The layout transpose between the pool's token-major blocks and kvcache.v1's payload (per layer K then V, each
 * [kvHeads][blockTokens][headDim], float32 little-endian): where each float lands, and the round trip bit for bit.
 */
class KvPayloadTest {

    /** A value naming its place in the pool: layer, K or V, token, head, dim. */
    private static float tag(int layer, int v, int token, int head, int dim) {
        return layer * 100000 + v * 10000 + token * 1000 + head * 100 + dim;
    }

    private static float[][][] block(KvPayload l) {
        float[][] k = new float[l.layers()][l.floatsPerLayer()];
        float[][] v = new float[l.layers()][l.floatsPerLayer()];
        for (int layer = 0; layer < l.layers(); layer++) {
            for (int t = 0; t < l.blockTokens(); t++) {
                for (int h = 0; h < l.kvHeads(); h++) {
                    for (int d = 0; d < l.headDim(); d++) {
                        int at = (t * l.kvHeads() + h) * l.headDim() + d;
                        k[layer][at] = tag(layer, 0, t, h, d);
                        v[layer][at] = tag(layer, 1, t, h, d);
                    }
                }
            }
        }
        return new float[][][] {k, v};
    }

    @ParameterizedTest(name = "layers {0}, kv heads {1}, block {2}, head dim {3}")
    @CsvSource({"1, 1, 1, 1", "2, 2, 16, 8", "3, 4, 4, 2", "1, 8, 16, 3"})
    void encode_putsEachFloatAtTheContractsOffset(int layers, int heads, int tokens, int dim) {
        KvPayload l = new KvPayload(layers, heads, tokens, dim);
        float[][][] kv = block(l);
        ByteBuffer wire = ByteBuffer.wrap(l.encode(kv[0], kv[1])).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(wire.capacity()).isEqualTo(2 * layers * heads * tokens * dim * 4);
        for (int layer = 0; layer < layers; layer++) {
            for (int v = 0; v < 2; v++) {
                for (int h = 0; h < heads; h++) {
                    for (int t = 0; t < tokens; t++) {
                        for (int d = 0; d < dim; d++) {
                            int index = (((layer * 2 + v) * heads + h) * tokens + t) * dim + d;
                            assertThat(wire.getFloat(index * 4)).isEqualTo(tag(layer, v, t, h, d));
                        }
                    }
                }
            }
        }
    }

    @Property(tries = 200)
    void decode_undoesEncode_bitForBit(@ForAll @IntRange(min = 1, max = 3) int layers,
                                       @ForAll @IntRange(min = 1, max = 4) int heads,
                                       @ForAll @IntRange(min = 1, max = 17) int tokens,
                                       @ForAll @IntRange(min = 1, max = 9) int dim, @ForAll long seed) {
        KvPayload l = new KvPayload(layers, heads, tokens, dim);
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        float[][] k = new float[layers][l.floatsPerLayer()];
        float[][] v = new float[layers][l.floatsPerLayer()];
        for (int i = 0; i < layers; i++) {
            for (int j = 0; j < l.floatsPerLayer(); j++) {
                k[i][j] = Float.intBitsToFloat(r.nextInt() & 0x7f7fffff);
                v[i][j] = (float) r.nextGaussian();
            }
        }
        float[][][] back = l.decode(l.encode(k, v));
        assertThat(back[0]).isDeepEqualTo(k);
        assertThat(back[1]).isDeepEqualTo(v);
    }

    @ParameterizedTest(name = "{0} bytes")
    @CsvSource({"0", "255", "257"})
    void aPayloadOfAnotherSize_isRefused_namingBoth(int bytes) {
        KvPayload l = new KvPayload(1, 2, 4, 4);
        assertThatThrownBy(() -> l.decode(new byte[bytes])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("256 bytes").hasMessageContaining("got " + bytes);
    }
}
