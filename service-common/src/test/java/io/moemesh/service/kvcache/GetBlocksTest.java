package io.moemesh.service.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.kvcache.v1.Tier;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The client's Get contract: blocks in order, chunks at the offsets they claim, exactly a block's bytes; the
 * leading run of good blocks is kept, a bad first block is an error naming it. Replies go through the marshaller
 * (written, then parsed) as on a call.
 */
class GetBlocksTest {
    private static final int BLOCK = 1000;
    private static final GetReplyMarshaller WIRE = new GetReplyMarshaller(BLOCK);

    private static GetReply sent(GetReply r) {
        try {
            return WIRE.parse(GetReplyMarshallerTest.grpcStream(GetReplyMarshallerTest.drain(WIRE.stream(r))));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static GetReply chunk(int index, byte[] block, int from, int to, boolean last) {
        return sent(GetReply.chunk(index, Tier.TIER_SSD, from, ByteBuffer.wrap(block, from, to - from).slice()
                .asReadOnlyBuffer(), last));
    }

    private static byte[] block(int seed) {
        return GetReplyMarshallerTest.bytes(BLOCK, seed);
    }

    @Test
    void wholeBlocks_andMultiChunkBlocks_areAssembledExactly() {
        byte[] a = block(1);
        byte[] b = block(2);
        List<GetReply> replies = List.of(chunk(0, a, 0, BLOCK, true), chunk(1, b, 0, 300, false),
                chunk(1, b, 300, 999, false), chunk(1, b, 999, BLOCK, true));

        List<byte[]> got = GetBlocks.read(replies.iterator(), 2, BLOCK);

        assertThat(got).hasSize(2);
        assertThat(got.get(0)).isEqualTo(a);
        assertThat(got.get(1)).isEqualTo(b);
    }

    @Test
    void aOneChunkBlock_isTheArrayTheMarshallerReadItInto() {
        GetReply r = chunk(0, block(3), 0, BLOCK, true);
        assertThat(GetBlocks.read(List.of(r).iterator(), 1, BLOCK).get(0)).isSameAs(r.data().array());
    }

    @Test
    void aMiss_endsTheRun() {
        byte[] a = block(4);
        List<GetReply> replies = List.of(chunk(0, a, 0, BLOCK, true), sent(GetReply.miss(1)),
                chunk(2, block(5), 0, BLOCK, true));
        assertThat(GetBlocks.read(replies.iterator(), 3, BLOCK)).containsExactly(a);
        assertThat(GetBlocks.read(List.of(sent(GetReply.miss(0))).iterator(), 3, BLOCK)).isEmpty();
    }

    @Test
    void readingStops_atTheRequestedCount() {
        byte[] a = block(6);
        List<GetReply> replies = new ArrayList<>(List.of(chunk(0, a, 0, BLOCK, true)));
        replies.add(null); // never read
        assertThat(GetBlocks.read(replies.iterator(), 1, BLOCK)).containsExactly(a);
    }

    static Stream<Arguments> badFirstBlocks() {
        byte[] a = block(7);
        return Stream.of(
                Arguments.of("short block", List.of(chunk(0, a, 0, 999, true)), "block 0 ended after 999 of 1000"),
                Arguments.of("oversize block", List.of(sent(GetReply.chunk(0, Tier.TIER_SSD, 0,
                        ByteBuffer.wrap(new byte[BLOCK + 1]), true))), "a chunk at offset 0 of 1001 bytes after 0"),
                Arguments.of("gap", List.of(chunk(0, a, 0, 300, false), chunk(0, a, 400, BLOCK, true)),
                        "a chunk at offset 400 of 600 bytes after 300"),
                Arguments.of("wrong index", List.of(chunk(1, a, 0, BLOCK, true)), "block 1 sent while block 0"),
                Arguments.of("truncated stream", List.of(chunk(0, a, 0, 300, false)),
                        "the stream ended after 300 of 1000"),
                Arguments.of("miss mid-block", List.of(chunk(0, a, 0, 300, false), sent(GetReply.miss(0))),
                        "reported missing after 300"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badFirstBlocks")
    void aBadFirstBlock_isAnErrorNamingIt(String name, List<GetReply> replies, String message) {
        assertThatThrownBy(() -> GetBlocks.read(replies.iterator(), 2, BLOCK))
                .isInstanceOf(GetBlocks.BadReplyException.class).hasMessageContaining(message);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badFirstBlocks")
    void aBadBlockAfterGoodOnes_endsTheRun_keepingTheGoodOnes(String name, List<GetReply> bad, String message) {
        byte[] good = block(8);
        List<GetReply> replies = new ArrayList<>();
        replies.add(chunk(0, good, 0, BLOCK, true));
        for (GetReply r : bad) {
            // the same fault, one block later
            replies.add(new GetReply(r.index() + 1, r.found(), r.tier(), r.offset(), r.data(), r.last()));
        }
        List<byte[]> got = GetBlocks.read(replies.iterator(), 3, BLOCK);
        assertThat(got).hasSize(1);
        assertThat(Arrays.equals(got.get(0), good)).isTrue();
    }
}
