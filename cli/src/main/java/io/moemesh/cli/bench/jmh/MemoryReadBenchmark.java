package io.moemesh.cli.bench.jmh;

import io.moemesh.model.kernel.Parallel;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Plain memory-read bandwidth: a vectorised sum over a buffer far larger than the L3, split over all cores by the
 * same {@link Parallel} the kernels use. The yardstick of the 1-token expert FFN, which streams its weights.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class MemoryReadBenchmark {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final long UNIT = 1 << 20;

    @Param({"1024"})
    public int megabytes;

    private Arena arena;
    private MemorySegment buffer;
    private float[] sums;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        buffer = arena.allocate(megabytes * UNIT, 4096);
        buffer.fill((byte) 1);
        sums = new float[megabytes];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public float read() {
        Parallel.forRange(megabytes, 1, UNIT, (from, to) -> sums[from] = sum(buffer, from * UNIT, to * UNIT));
        float s = 0;
        for (float v : sums) {
            s += v;
        }
        return s;
    }

    private static float sum(MemorySegment s, long from, long to) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        long step = F.vectorByteSize();
        for (long o = from; o < to; o += 4 * step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, s, o, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(F, s, o + step, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(F, s, o + 2 * step, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(F, s, o + 3 * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }
}
