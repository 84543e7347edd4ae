package io.moemesh.cli.bench.jmh;

import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.grpc.TensorCodec;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The hop's bf16 wire conversions (issue 13): the per-element loops TensorCodec had (a VarHandle store per
 * element to encode, an int-pair segment load to decode) against the chunked loops the hop uses now
 * ({@link TensorCodec#write}: the Vector API's rounding into a cache-resident pool chunk since 2026-12-06, per
 * element before, {@code encodePerElement}; {@link TensorCodec.TensorReader}: the
 * Vector API's widening conversion, {@code Bf16Vectors}, since 2026-12-06, before that a bulk copy with a widening
 * shift loop, {@code decodeShortLoop}) and the branch-free array loop that was tried for encoding
 * ({@link TensorCodec#toBf16(float[], int, int[], short[], int)}), for one 32 × 4096 tensor. Run: {@code java -cp cli/target/moemesh-cli.jar org.openjdk.jmh.Main Bf16Conversion}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class Bf16ConversionBenchmark {
    private static final VarHandle BF16_BYTES = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt PAIR = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Param({"131072"})
    public int elements;

    private float[] src;
    private float[] dst;
    private byte[] bytes;
    private ByteBuffer direct;
    private int[] bits;
    private short[] shorts;

    @Setup
    public void setup() {
        Random r = new Random(1);
        src = new float[elements];
        for (int i = 0; i < elements; i++) {
            src[i] = (float) r.nextGaussian();
        }
        dst = new float[elements];
        bits = new int[elements];
        shorts = new short[elements];
        bytes = new byte[2 * elements];
        for (int i = 0; i < elements; i++) {
            BF16_BYTES.set(bytes, 2 * i, TensorCodec.toBf16(src[i]));
        }
        direct = ByteBuffer.allocateDirect(bytes.length).put(bytes).flip();
    }

    @Benchmark
    public byte[] encodePerElement() {
        byte[] out = bytes;
        for (int i = 0; i < elements; i++) {
            BF16_BYTES.set(out, 2 * i, TensorCodec.toBf16(src[i]));
        }
        return out;
    }

    /** The branch-free array loop (bulk bit copy, integer loop, narrowing store). */
    @Benchmark
    public short[] encodeArrayLoop() {
        TensorCodec.toBf16(src, 0, bits, shorts, elements);
        return shorts;
    }

    /**
     * What the hop does: rounded with vectors into a pool chunk's shorts (Bf16Vectors.encode, since 2026-12-06; per
     * element before), copied into its bytes and written out (to a sink here, gRPC's buffers there).
     */
    @Benchmark
    public void encodeChunked() throws Exception {
        TensorCodec.write(src, 0, elements, DType.DTYPE_BF16, OutputStream.nullOutputStream());
    }

    @Benchmark
    public float[] decodePerPair() {
        MemorySegment in = MemorySegment.ofBuffer(direct);
        for (int i = 0; i + 1 < elements; i += 2) {
            int pair = in.get(PAIR, 2L * i);
            dst[i] = Float.intBitsToFloat(pair << 16);
            dst[i + 1] = Float.intBitsToFloat(pair & 0xffff0000);
        }
        return dst;
    }

    /** The hop's decode before the Vector API: a bulk copy into a 16 Ki short chunk and a widening shift loop. */
    @Benchmark
    public float[] decodeShortLoop() {
        MemorySegment in = MemorySegment.ofBuffer(direct);
        for (int done = 0; done < elements; done += 16384) {
            int k = Math.min(16384, elements - done);
            MemorySegment.copy(in, SHORT, 2L * done, shorts, 0, k);
            TensorCodec.fromBf16(shorts, bits, dst, done, k);
        }
        return dst;
    }

    /** What the hop does: the received (direct) buffer widened in place with the Vector API (Bf16Vectors). */
    @Benchmark
    public float[] decodeChunked() {
        new TensorCodec.TensorReader(DType.DTYPE_BF16, elements, dst, 0).accept(direct);
        return dst;
    }
}
