package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import com.google.protobuf.ByteString;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/**
 * The zero-copy marshaller writes exactly what the generated message would mean and reads what the generated
 * serialiser writes; the tensor's byte length is checked against its shape and dtype; malformed protobuf is
 * named; pool chunks always go back.
 */
class TensorMessageMarshallerTest {
    private static final TensorMessageMarshaller<ExpertBatchRequest> REQUESTS =
            new TensorMessageMarshaller<>(ExpertBatchRequest.getDefaultInstance(), ExpertBatchRequest.ACTIVATIONS_FIELD_NUMBER);
    private static final TensorMessageMarshaller<ExpertBatchResponse> RESPONSES =
            new TensorMessageMarshaller<>(ExpertBatchResponse.getDefaultInstance(), ExpertBatchResponse.OUTPUTS_FIELD_NUMBER);

    @AfterEach
    void everyChunkReturned() {
        assertThat(HopBufferPool.shared().outstanding()).isZero();
    }

    static float[] floats(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextGaussian() * 3f;
        }
        return x;
    }

    private static ExpertBatchRequest header() {
        return ExpertBatchRequest.newBuilder().setBatchId(7).setPlacementEpoch(3).setLayer(2).addTokenExpertCounts(2)
                .addTokenExpertCounts(1).addExperts(4).addExperts(1).addExperts(6).addWeights(0.5f).addWeights(0.25f)
                .addWeights(1f).setOutputDtype(DType.DTYPE_BF16).putTraceContext("traceparent", "00-abc").build();
    }

    private static byte[] drain(InputStream in) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ((io.grpc.Drainable) in).drainTo(out);
        return out.toByteArray();
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void written_meansTheSameAsTheGeneratedMessage_withTensorCodecsBytes(DType dtype) throws Exception {
        // 3 × 20000 floats: several pool chunks, and for bf16 an odd chunk boundary.
        float[] x = floats(3 * 20_000, 1);
        InputStream stream = REQUESTS.stream(TensorMessage.of(header(), x, 3, 20_000, dtype));
        int known = stream.available();
        byte[] wire = drain(stream);

        assertThat(wire).hasSize(known);
        ExpertBatchRequest parsed = ExpertBatchRequest.parseFrom(wire);
        ExpertBatchRequest expected = header().toBuilder().setActivations(TensorCodec.encode(x, 0, 3, 20_000, dtype)).build();
        assertThat(parsed).isEqualTo(expected);
    }

    /**
     * A pooled message's floats go back to the pool once written into gRPC's buffers, and a received message's come
     * from it, so the hop allocates no tensor arrays once warm; a plain message's floats stay the caller's.
     */
    @Test
    void pooledValues_goBackOnceWritten_andReadValuesComeFromThePool() throws Exception {
        int n = 2 * 3_001; // a length no other test uses
        float[] mine = floats(n, 5);
        drain(RESPONSES.stream(TensorMessage.of(ExpertBatchResponse.getDefaultInstance(), mine, 2, 3_001, DType.DTYPE_F32)));
        assertThat(TensorArrayPool.shared().take(n)).isNotSameAs(mine);

        float[] handed = floats(n, 6);
        float[] copy = handed.clone();
        byte[] wire = drain(RESPONSES.stream(TensorMessage.ofPooled(ExpertBatchResponse.getDefaultInstance(), handed, 2,
                3_001, DType.DTYPE_F32)));
        TensorMessage<ExpertBatchResponse> read = RESPONSES.parse(new ByteArrayInputStream(wire));
        assertThat(read.floats("outputs", 2, 3_001)).isSameAs(handed).containsExactly(copy);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void read_fromTheGeneratedSerialisation_decodesTheSameFloatsAsTensorCodec(DType dtype) {
        float[] x = floats(5 * 4099, 2);
        ExpertBatchResponse generated = ExpertBatchResponse.newBuilder().setBatchId(9).setLayer(1).setComputeMicros(12)
                .setOutputs(TensorCodec.encode(x, 0, 5, 4099, dtype)).setServingEpoch(4).build();

        TensorMessage<ExpertBatchResponse> read = RESPONSES.parse(new ByteArrayInputStream(generated.toByteArray()));

        float[] viaCodec = new float[x.length];
        TensorCodec.decode(generated.getOutputs(), "outputs", 5, 4099, viaCodec, 0);
        assertThat(read.floats("outputs", 5, 4099)).containsExactly(viaCodec);
        assertThat(read.header()).isEqualTo(generated.toBuilder().clearOutputs().build());
    }

    @Test
    void read_fieldsInAnyOrder_dataBeforeShapeAndDtype_decodesTheSame() throws Exception {
        float[] x = floats(8, 3);
        Tensor t = TensorCodec.encode(x, 0, 2, 4);
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        com.google.protobuf.CodedOutputStream out = com.google.protobuf.CodedOutputStream.newInstance(wire);
        // Tensor with data first, then dtype, then shape; the tensor before batch_id.
        ByteArrayOutputStream tb = new ByteArrayOutputStream();
        com.google.protobuf.CodedOutputStream to = com.google.protobuf.CodedOutputStream.newInstance(tb);
        to.writeBytes(3, t.getData());
        to.writeEnum(1, DType.DTYPE_F32_VALUE);
        to.writeInt64(2, 2);
        to.writeInt64(2, 4);
        to.flush();
        out.writeByteArray(ExpertBatchResponse.OUTPUTS_FIELD_NUMBER, tb.toByteArray());
        out.writeUInt64(1, 42);
        out.flush();

        TensorMessage<ExpertBatchResponse> read = RESPONSES.parse(new ByteArrayInputStream(wire.toByteArray()));

        assertThat(read.header().getBatchId()).isEqualTo(42);
        assertThat(read.floats("outputs", 2, 4)).containsExactly(x);
    }

    @Test
    void read_payloadShorterThanShapeTimesDtype_isRefusedForThatMessage_namingTheSizes() {
        ExpertBatchResponse lying = ExpertBatchResponse.newBuilder().setBatchId(5).setOutputs(Tensor.newBuilder()
                .setDtype(DType.DTYPE_F32).addShape(2).addShape(4).setData(ByteString.copyFrom(new byte[28]))).build();

        TensorMessage<ExpertBatchResponse> read = RESPONSES.parse(new ByteArrayInputStream(lying.toByteArray()));

        assertThat(read.header().getBatchId()).isEqualTo(5);
        assertThat(read.values()).isNull();
        assertThatThrownBy(() -> read.floats("expert-0 outputs", 2, 4)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expert-0 outputs: 28 bytes of DTYPE_F32 data, expected 32 (truncated or padded payload)");
    }

    @Test
    void read_truncatedMessage_failsNamingTheTruncation() {
        float[] x = floats(64, 4);
        byte[] whole = ExpertBatchResponse.newBuilder().setBatchId(5)
                .setOutputs(TensorCodec.encode(x, 0, 4, 16)).build().toByteArray();
        byte[] cut = Arrays.copyOf(whole, whole.length - 10);

        assertThatThrownBy(() -> RESPONSES.parse(new ByteArrayInputStream(cut)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("truncated message");
    }

    /** A stream that does not know its length, as gRPC hands over a gzip-compressed message (an inflating stream). */
    static InputStream inflating(byte[] wire) {
        return new FilterInputStream(new ByteArrayInputStream(wire)) { };
    }

    static long allocatedByThisThread() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /**
     * A few bytes claiming a field of about 2 GiB (trace_context: a bytes copy; activations: bf16 data of
     * 2^30 - 16 floats, a 4 GiB float array) are refused as truncated before anything is allocated for the claim,
     * also from a stream that does not know its length (a compressed message).
     */
    @Test
    void read_lengthPastTheEndOfACompressedMessage_isRefusedAsTruncated_withoutAllocatingTheClaim() throws Exception {
        byte[] traceContext = {0x4A, (byte) 0xF0, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x07};
        ByteArrayOutputStream tensor = new ByteArrayOutputStream();
        com.google.protobuf.CodedOutputStream t = com.google.protobuf.CodedOutputStream.newInstance(tensor);
        long dataBytes = (1L << 31) - 32;
        t.writeEnum(Tensor.DTYPE_FIELD_NUMBER, DType.DTYPE_BF16_VALUE);
        t.writeInt64(Tensor.SHAPE_FIELD_NUMBER, 1);
        t.writeInt64(Tensor.SHAPE_FIELD_NUMBER, dataBytes / 2);
        t.writeTag(Tensor.DATA_FIELD_NUMBER, 2);
        t.writeUInt64NoTag(dataBytes);
        t.flush();
        ByteArrayOutputStream activations = new ByteArrayOutputStream();
        com.google.protobuf.CodedOutputStream a = com.google.protobuf.CodedOutputStream.newInstance(activations);
        a.writeTag(ExpertBatchRequest.ACTIVATIONS_FIELD_NUMBER, 2);
        a.writeUInt64NoTag(tensor.size() + dataBytes);
        a.writeRawBytes(tensor.toByteArray());
        a.flush();

        for (byte[] wire : new byte[][] {traceContext, activations.toByteArray()}) {
            for (InputStream in : new InputStream[] {inflating(wire), new ByteArrayInputStream(wire)}) {
                long before = allocatedByThisThread();
                Throwable refused = catchThrowable(() -> REQUESTS.parse(in));
                long allocated = allocatedByThisThread() - before;

                assertThat(allocated).as("bytes allocated while parsing").isLessThan(1 << 20);
                assertThat(refused).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("runs past the end of the message (truncated message)");
            }
        }
    }

    @Test
    void written_withoutTensor_isTheHeaderAlone() throws Exception {
        ExpertBatchResponse failed = ExpertBatchResponse.newBuilder().setBatchId(3)
                .setStatus(com.google.rpc.Status.newBuilder().setCode(3).setMessage("bad")).build();

        byte[] wire = drain(RESPONSES.stream(TensorMessage.withoutTensor(failed)));

        assertThat(ExpertBatchResponse.parseFrom(wire)).isEqualTo(failed);
        assertThat(RESPONSES.parse(new ByteArrayInputStream(wire)).tensorPresent()).isFalse();
    }

    @Test
    void written_readInsteadOfDrained_givesTheSameBytes() throws Exception {
        float[] x = floats(40_000, 5);
        byte[] drained = drain(REQUESTS.stream(TensorMessage.of(header(), x, 1, 40_000, DType.DTYPE_F32)));
        byte[] read = REQUESTS.stream(TensorMessage.of(header(), x, 1, 40_000, DType.DTYPE_F32)).readAllBytes();
        assertThat(read).isEqualTo(drained);
    }

    /** The vectorised-shape bf16 loops agree bit for bit with the scalar rule, NaN and infinities included. */
    @Property(tries = 200)
    void bf16Loops_equalTheScalarConversion(@ForAll("bits") int[] bits) {
        float[] src = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            src[i] = Float.intBitsToFloat(bits[i]);
        }
        short[] out = new short[src.length];
        TensorCodec.toBf16(src, 0, new int[src.length], out, src.length);
        float[] back = new float[src.length];
        TensorCodec.fromBf16(out, new int[src.length], back, 0, src.length);
        for (int i = 0; i < src.length; i++) {
            assertThat(out[i]).as("bf16 of bits %08x", bits[i]).isEqualTo(TensorCodec.toBf16(src[i]));
            assertThat(Float.floatToRawIntBits(back[i])).isEqualTo(out[i] << 16);
        }
    }

    @net.jqwik.api.Provide
    net.jqwik.api.Arbitrary<int[]> bits() {
        net.jqwik.api.Arbitrary<Integer> special = net.jqwik.api.Arbitraries.of(0x7f800000, 0xff800000, 0x7fc00000,
                0x7f800001, 0xffffffff, 0x7f7fffff, 0x00000001, 0x80000000, 0x3f808000, 0x3f818000, 0x7f7f8000);
        net.jqwik.api.Arbitrary<Integer> any = net.jqwik.api.Arbitraries.integers().between(Integer.MIN_VALUE, Integer.MAX_VALUE);
        return net.jqwik.api.Arbitraries.oneOf(special, any).array(int[].class).ofMinSize(1).ofMaxSize(300);
    }

    @Property(tries = 50)
    void roundTrip_anyShape_exactForF32(@ForAll @IntRange(min = 1, max = 9) int rows, @ForAll @IntRange(min = 1, max = 9000) int cols) {
        float[] x = floats(rows * cols, rows * 31L + cols);
        InputStream s = REQUESTS.stream(TensorMessage.of(header(), x, rows, cols, DType.DTYPE_F32));
        TensorMessage<ExpertBatchRequest> back;
        try {
            back = REQUESTS.parse(new ByteArrayInputStream(drain(s)));
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        assertThat(back.floats("activations", rows, cols)).containsExactly(x);
        assertThat(back.header()).isEqualTo(header());
        assertThat(HopBufferPool.shared().outstanding()).isZero();
    }
}
