package io.moemesh.service.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import com.google.protobuf.ByteString;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.internal.ReadableBuffers;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.proto.kvcache.v1.Tier;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Get reply marshaller writes byte for byte what the generated GetResponse serialises and reads what it
 * serialises (from plain streams and from gRPC's buffer streams); a block's first chunk lands in a block-sized
 * array; malformed protobuf is named.
 */
class GetReplyMarshallerTest {
    private static final int BLOCK = 1000;
    private static final GetReplyMarshaller CLIENT = new GetReplyMarshaller(BLOCK);

    static byte[] bytes(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    static byte[] drain(InputStream in) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ((Drainable) in).drainTo(out);
        return out.toByteArray();
    }

    /** gRPC's received-message stream over the bytes: KnownLength and HasByteBuffer, as on a real call. */
    static InputStream grpcStream(byte[] wire) {
        return ReadableBuffers.openStream(ReadableBuffers.wrap(ByteBuffer.wrap(wire)), true);
    }

    static Stream<Arguments> replies() {
        byte[] d = bytes(BLOCK, 1);
        return Stream.of(
                Arguments.of("miss", GetReply.miss(3), GetResponse.newBuilder().setIndex(3).setLast(true).build()),
                Arguments.of("miss of block 0", GetReply.miss(0), GetResponse.newBuilder().setLast(true).build()),
                Arguments.of("whole block, read-only buffer",
                        GetReply.chunk(0, Tier.TIER_SSD, 0, ByteBuffer.wrap(d).asReadOnlyBuffer(), true),
                        GetResponse.newBuilder().setFound(true).setTier(Tier.TIER_SSD)
                                .setData(ByteString.copyFrom(d)).setLast(true).build()),
                Arguments.of("middle chunk, array-backed slice",
                        GetReply.chunk(70_000, Tier.TIER_DRAM, 400, ByteBuffer.wrap(d).slice(400, 300), false),
                        GetResponse.newBuilder().setIndex(70_000).setFound(true).setTier(Tier.TIER_DRAM).setOffset(400)
                                .setData(ByteString.copyFrom(d, 400, 300)).build()),
                Arguments.of("chunk larger than the scratch, read-only",
                        GetReply.chunk(1, Tier.TIER_CSD, 1 << 20,
                                ByteBuffer.wrap(bytes(100_000, 2)).asReadOnlyBuffer(), true),
                        GetResponse.newBuilder().setIndex(1).setFound(true).setTier(Tier.TIER_CSD).setOffset(1 << 20)
                                .setData(ByteString.copyFrom(bytes(100_000, 2))).setLast(true).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("replies")
    void written_isByteForByteTheGeneratedSerialisation(String name, GetReply reply, GetResponse generated)
            throws Exception {
        assertThat(drain(CLIENT.stream(reply))).isEqualTo(generated.toByteArray());
        assertThat(CLIENT.stream(reply).available()).isEqualTo(generated.getSerializedSize());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("replies")
    void read_fromTheGeneratedSerialisation_givesTheSameFields(String name, GetReply ignored, GetResponse generated) {
        for (InputStream in : new InputStream[] {new ByteArrayInputStream(generated.toByteArray()),
                grpcStream(generated.toByteArray())}) {
            GetReply r = CLIENT.parse(in);
            assertThat(r.index()).isEqualTo(generated.getIndex());
            assertThat(r.found()).isEqualTo(generated.getFound());
            assertThat(r.tier()).isEqualTo(generated.getTierValue());
            assertThat(r.offset()).isEqualTo(generated.getOffset());
            assertThat(r.last()).isEqualTo(generated.getLast());
            assertThat(ByteString.copyFrom(r.data())).isEqualTo(generated.getData());
        }
    }

    @Test
    void read_aBlocksFirstChunk_landsInABlockSizedArray_laterChunksInTheirOwn() {
        byte[] d = bytes(BLOCK, 3);
        GetResponse first = GetResponse.newBuilder().setFound(true).setData(ByteString.copyFrom(d, 0, 600)).build();
        GetResponse second = GetResponse.newBuilder().setFound(true).setOffset(600)
                .setData(ByteString.copyFrom(d, 600, 400)).setLast(true).build();

        GetReply a = CLIENT.parse(grpcStream(first.toByteArray()));
        GetReply b = CLIENT.parse(grpcStream(second.toByteArray()));

        assertThat(a.blockArray(BLOCK)).hasSize(BLOCK).startsWith(Arrays.copyOf(d, 600));
        assertThat(a.length()).isEqualTo(600);
        assertThat(b.blockArray(BLOCK)).isNull();
        assertThat(b.data().array()).hasSize(400);
    }

    @Test
    void read_aChunkLargerThanTheBlock_isNotPutInABlockArray() {
        GetResponse big = GetResponse.newBuilder().setFound(true).setData(ByteString.copyFrom(bytes(BLOCK + 1, 4)))
                .build();
        GetReply r = CLIENT.parse(grpcStream(big.toByteArray()));
        assertThat(r.blockArray(BLOCK)).isNull();
        assertThat(r.length()).isEqualTo(BLOCK + 1);
    }

    @Test
    void read_fieldsInAnyOrder_dataBeforeOffset_readsTheSame() throws Exception {
        byte[] d = bytes(200, 5);
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        GetResponse.newBuilder().setLast(true).setData(ByteString.copyFrom(d)).build().writeTo(wire);
        GetResponse.newBuilder().setIndex(2).setFound(true).setOffset(800).build().writeTo(wire);

        GetReply r = CLIENT.parse(grpcStream(wire.toByteArray()));

        assertThat(r.index()).isEqualTo(2);
        assertThat(r.offset()).isEqualTo(800);
        assertThat(r.last()).isTrue();
        assertThat(ByteString.copyFrom(r.data())).isEqualTo(ByteString.copyFrom(d));
        assertThat(r.blockArray(BLOCK)).isNull(); // its array is a block's, but the chunk does not start the block
    }

    @Test
    void read_unknownFields_areSkipped() throws Exception {
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        com.google.protobuf.CodedOutputStream out = com.google.protobuf.CodedOutputStream.newInstance(wire);
        out.writeString(99, "a later field");
        out.writeFixed64(98, 7);
        out.writeFixed32(97, 7);
        out.writeUInt32(1, 4);
        out.flush();
        assertThat(CLIENT.parse(grpcStream(wire.toByteArray())).index()).isEqualTo(4);
    }

    @Test
    void read_truncatedMessage_failsNamingTheTruncation() {
        byte[] whole = GetResponse.newBuilder().setFound(true).setData(ByteString.copyFrom(bytes(500, 6))).build()
                .toByteArray();
        byte[] cut = Arrays.copyOf(whole, whole.length - 10);
        for (InputStream in : new InputStream[] {new ByteArrayInputStream(cut), grpcStream(cut)}) {
            assertThatThrownBy(() -> CLIENT.parse(in)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("kvcache.v1.GetResponse").hasMessageContaining("truncated message");
        }
    }

    /**
     * Six bytes claiming a 2 GiB data field are refused as truncated before the array is allocated, also from a
     * stream that does not know its length (a compressed reply: an inflating stream).
     */
    @Test
    void read_dataLengthPastTheEndOfACompressedMessage_isRefusedAsTruncated_withoutAllocatingTheClaim() {
        byte[] wire = {(byte) ((GetResponse.DATA_FIELD_NUMBER << 3) | 2), (byte) 0xF0, (byte) 0xFF, (byte) 0xFF,
            (byte) 0xFF, 0x07};
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (InputStream in : new InputStream[] {new FilterInputStream(new ByteArrayInputStream(wire)) { },
            new ByteArrayInputStream(wire), grpcStream(wire)}) {
            long before = threads.getCurrentThreadAllocatedBytes();
            Throwable refused = catchThrowable(() -> CLIENT.parse(in));
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;

            assertThat(allocated).as("bytes allocated while parsing").isLessThan(1 << 20);
            assertThat(refused).isInstanceOf(IllegalArgumentException.class).hasMessageContaining(
                    "kvcache.v1.GetResponse: a length of 2147483632 at byte 6 runs past the end of the message");
        }
    }

    @Test
    void read_groupWireType_isRefusedNamingTheField() {
        byte[] wire = {(byte) ((7 << 3) | 3)};
        assertThatThrownBy(() -> CLIENT.parse(new ByteArrayInputStream(wire)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("field 7: wire type 3");
    }

    @Test
    void written_readInsteadOfDrained_givesTheSameBytes() throws Exception {
        GetReply r = GetReply.chunk(1, Tier.TIER_SSD, 0, ByteBuffer.wrap(bytes(70_000, 7)).asReadOnlyBuffer(), true);
        assertThat(CLIENT.stream(r).readAllBytes()).isEqualTo(drain(CLIENT.stream(r)));
    }

    @Test
    void grpcStreams_offerTheirBuffers() {
        assertThat(grpcStream(new byte[3])).isInstanceOf(HasByteBuffer.class);
    }

    @Test
    void negativeBlockBytes_isRefused() {
        assertThatThrownBy(() -> new GetReplyMarshaller(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("blockBytes");
    }

    @Property(tries = 100)
    void roundTrip_anyChunk_sameFieldsAndBytes(@ForAll @IntRange(min = 0, max = 70_000) int index,
                                              @ForAll @IntRange(min = 0, max = 5000) int length,
                                              @ForAll @IntRange(min = 0, max = 3) int offsetBlocks,
                                              @ForAll boolean last, @ForAll boolean readOnly) throws Exception {
        byte[] d = bytes(length, index);
        ByteBuffer data = readOnly ? ByteBuffer.wrap(d).asReadOnlyBuffer() : ByteBuffer.wrap(d);
        GetReply sent = GetReply.chunk(index, Tier.TIER_SSD, (long) offsetBlocks * BLOCK, data, last);

        byte[] wire = drain(CLIENT.stream(sent));
        GetReply got = CLIENT.parse(grpcStream(wire));

        assertThat(GetResponse.parseFrom(wire).getData()).isEqualTo(ByteString.copyFrom(d));
        assertThat(got.index()).isEqualTo(index);
        assertThat(got.offset()).isEqualTo((long) offsetBlocks * BLOCK);
        assertThat(got.last()).isEqualTo(last);
        assertThat(ByteString.copyFrom(got.data())).isEqualTo(ByteString.copyFrom(d));
    }
}
