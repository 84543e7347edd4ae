package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.support.KvTestMesh.sequence;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.kvcache.attend.BlockAttention;
import io.moemesh.kvcache.attend.PartialAttention;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.Tier;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
/** Attend over stored blocks: exact against full attention when merged with a local part; its bad input. */
class KvCacheAttendTest extends KvCacheServiceTestBase {
    /**
     * The bound max-inbound-message-bytes is checked against at startup holds the largest Attend request of a
     * Mixtral-8x7B-sized model (32 heads of 128, 32768 positions, 16-token blocks): 256 query rows, positions near
     * 2^31, a hash per block up to max_position_embeddings, every other field at its longest; and it is not loose by
     * more than its 1 KiB allowance and the positions' varints.
     */
    @Test
    void largestAttendRequestBytes_holdsTheLargestRequestOfAModel() {
        int heads = 32;
        int dim = 128;
        int maxPositions = 32768;
        AttendRequest.Builder b = AttendRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(new byte[32]))
                .setLayout(BlockLayout.newBuilder().setBlockTokens(16).setNumLayers(-1).setNumKvHeads(-1)
                        .setHeadDim(-1))
                .setLayer(-1).setFirstBlock(-1).setScale(Float.MAX_VALUE)
                .setQuery(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(256).addShape(heads).addShape(dim)
                        .setData(ByteString.copyFrom(new byte[256 * heads * dim * Float.BYTES])));
        for (int t = 0; t < 256; t++) {
            b.addPositions(Integer.MAX_VALUE);
        }
        for (int i = 0; i < maxPositions / 16; i++) {
            b.addBlockHashes(ByteString.copyFrom(new byte[32]));
        }

        long bound = KvCacheGrpcService.largestAttendRequestBytes(heads, dim, maxPositions, 16);

        assertThat((long) b.build().getSerializedSize()).isLessThanOrEqualTo(bound).isGreaterThan(bound - 2048);
    }

    /**
     * The service's partial over the stored blocks 0-1, merged with the caller's own partial over its local block 2,
     * is attention over all 48 positions, computed here directly (double precision softmax).
     */
    @Test
    void attend_mergedWithTheLocalPart_equalsFullAttention() throws Exception {
        List<Block> seq = sequence(20, 3, BT, "");
        put(seq.subList(0, 2), "");
        int heads = heads();
        int dim = LAYOUT.headDim();
        Random r = new Random(21);
        float[] query = new float[2 * heads * dim];
        for (int i = 0; i < query.length; i++) {
            query[i] = (float) r.nextGaussian();
        }
        int layer = 2;
        List<Long> positions = List.of(20L, 47L);
        AttendResponse a = stub.attend(attend(seq.subList(0, 2), layer, query, positions));
        assertThat(a.getTiersList()).containsExactly(Tier.TIER_DRAM, Tier.TIER_DRAM);
        assertThat(a.getOutputs().getShapeList()).containsExactly(2L, (long) heads, (long) dim);
        assertThat(a.getLse().getShapeList()).containsExactly(2L, (long) heads);
        float[] out = floats(a.getOutputs());
        float[] lse = floats(a.getLse());
        float scale = BlockAttention.defaultScale(dim);
        KvBlock local = KvBlock.of(BlockKey.of(seq.get(2).hash()), LAYOUT, seq.get(2).floats());
        for (int t = 0; t < 2; t++) {
            float[] q = java.util.Arrays.copyOfRange(query, t * heads * dim, (t + 1) * heads * dim);
            PartialAttention remote = new PartialAttention(heads, dim,
                    java.util.Arrays.copyOfRange(out, t * heads * dim, (t + 1) * heads * dim),
                    java.util.Arrays.copyOfRange(lse, t * heads, (t + 1) * heads));
            int localVisible = (int) Math.max(0, positions.get(t) - 32 + 1);
            PartialAttention mine = BlockAttention.attend(q, heads, List.of(local), LAYOUT, layer, localVisible, scale);
            PartialAttention merged = PartialAttention.merge(List.of(remote, mine));
            double[] expected = fullAttention(seq, layer, q, (int) (long) positions.get(t) + 1, scale);
            for (int i = 0; i < expected.length; i++) {
                assertThat((double) merged.output()[i]).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-5));
            }
        }
    }

    /** Softmax attention of one token over the first {@code visible} positions of the sequence, in double. */
    static double[] fullAttention(List<Block> seq, int layer, float[] q, int visible, float scale) {
        int heads = heads();
        int dim = LAYOUT.headDim();
        int group = heads / LAYOUT.kvHeads();
        double[] out = new double[heads * dim];
        for (int h = 0; h < heads; h++) {
            int g = h / group;
            double[] s = new double[visible];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < visible; j++) {
                float[] f = seq.get(j / BT).floats();
                double dot = 0;
                for (int d = 0; d < dim; d++) {
                    dot += q[h * dim + d] * f[LAYOUT.offset(layer, false, g, j % BT, d)];
                }
                s[j] = scale * dot;
                max = Math.max(max, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < visible; j++) {
                sum += Math.exp(s[j] - max);
            }
            for (int j = 0; j < visible; j++) {
                float[] f = seq.get(j / BT).floats();
                double w = Math.exp(s[j] - max) / sum;
                for (int d = 0; d < dim; d++) {
                    out[h * dim + d] += w * f[LAYOUT.offset(layer, true, g, j % BT, d)];
                }
            }
        }
        return out;
    }

    static float[] floats(Tensor t) {
        float[] f = new float[t.getData().size() / 4];
        t.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    static Stream<Arguments> badAttends() {
        return Stream.of(
                Arguments.of("a position before the blocks", 1, List.of(15L), 0, Status.Code.INVALID_ARGUMENT,
                        "positions[0]: 15 is not in [16, 2^31)"),
                Arguments.of("a negative position", 0, List.of(-1L), 0, Status.Code.INVALID_ARGUMENT,
                        "positions[0]: -1 is not in [0, 2^31)"),
                Arguments.of("a position past 2^31", 0, List.of(1L << 31), 0, Status.Code.INVALID_ARGUMENT,
                        "positions[0]: 2147483648 is not in [0, 2^31)"),
                Arguments.of("a layer past the model's", 0, List.of(20L), 4, Status.Code.INVALID_ARGUMENT,
                        "layer: 4 is not in [0, 4)"),
                Arguments.of("two positions for one token", 0, List.of(20L, 21L), 0, Status.Code.INVALID_ARGUMENT,
                        "positions: 2 positions for 1 query tokens"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badAttends")
    void attend_refusesOutOfRangePositionsAndLayers_namingTheField(String name, int firstBlock, List<Long> positions,
                                                                   int layer, Status.Code code, String message)
            throws Exception {
        List<Block> seq = sequence(22, 1, BT, "");
        put(seq, "");
        AttendRequest req = attend(seq, layer, new float[heads() * LAYOUT.headDim()], List.of(20L)).toBuilder()
                .clearPositions().addAllPositions(positions).setFirstBlock(firstBlock).build();
        assertThatThrownBy(() -> stub.attend(req)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(code);
            assertThat(e.getStatus().getDescription()).startsWith(message);
        });
    }

    @Test
    void attend_refusesAQueryWithASharedMemoryRegion_namingIt() throws Exception {
        List<Block> seq = sequence(24, 1, BT, "");
        put(seq, "");
        AttendRequest ok = attend(seq, 0, new float[heads() * LAYOUT.headDim()], List.of(20L));
        AttendRequest withRegion = ok.toBuilder().setQuery(ok.getQuery().toBuilder().setRegion(
                io.moemesh.proto.common.v1.ArenaRegion.newBuilder().setOffsetBytes(4096).setLengthBytes(256)
                        .setCapacityBytes(1 << 20))).build();
        assertThatThrownBy(() -> stub.attend(withRegion)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith("query.region: a shared-memory region is accepted "
                    + "by ExpertBatch only");
        });
    }

    @Test
    void attend_refusesAQueryOfTheWrongShape_andNamesAMissingBlock() throws Exception {
        List<Block> seq = sequence(23, 2, BT, "");
        put(seq.subList(0, 1), "");
        AttendRequest wrongHeads = attend(seq.subList(0, 1), 0, new float[2 * LAYOUT.headDim()], List.of(20L));
        wrongHeads = wrongHeads.toBuilder().setQuery(wrongHeads.getQuery().toBuilder().setShape(1, 2)).build();
        AttendRequest finalWrong = wrongHeads;
        assertThatThrownBy(() -> stub.attend(finalWrong)).isInstanceOfSatisfying(StatusRuntimeException.class, e ->
                assertThat(e.getStatus().getDescription()).startsWith("query: must be DTYPE_F32 [num_tokens, 4, 16]"));
        assertThatThrownBy(() -> stub.attend(attend(seq, 0, new float[heads() * LAYOUT.headDim()], List.of(40L))))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
                    assertThat(e.getStatus().getDescription()).isEqualTo("block_hashes[1]: the block is not stored");
                });
    }
}
