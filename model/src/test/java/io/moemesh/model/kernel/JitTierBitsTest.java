package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The kernels give the same bits in every JIT tier (LaneSum fixes the order of every lane sum), so a service need
 * not finish {@link MatMul#warmUp} before serving: a child JVM that runs only the interpreter ({@code -Xint}) or
 * only C1 ({@code -XX:TieredStopAtLevel=1}) computes {@link TierProbe}'s kernels and greedy generations with the
 * bits of this JVM after warm-up, where C2 has compiled them.
 */
class JitTierBitsTest {
    private static final List<String> TIERS = List.of("-Xint", "-XX:TieredStopAtLevel=1");
    private static final Map<String, Process> CHILDREN = new java.util.HashMap<>();
    private static Path dir;
    private static Map<String, float[]> compiled;

    @BeforeAll
    static void startChildrenThenWarmReference(@TempDir Path tmp) throws IOException {
        dir = tmp;
        // The children start first and run while this JVM warms up (the -Xint one takes longest).
        for (String tier : TIERS) {
            List<String> cmd = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(), tier,
                    "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                    // The same kernel threads as here: a fused matmul's split across threads may fall inside a
                    // 4-row tile when a weight's row count is not a multiple of 4 (the probe's are not), which
                    // moves a row between a tile and the one-row path, a different sum (MicroBatching's javadoc).
                    "-Dmoemesh.kernel.threads=" + Parallel.threads(), "-cp", System.getProperty("java.class.path"),
                    TierProbe.class.getName(), file(tier).toString()));
            CHILDREN.put(tier, new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log(tier).toFile())
                    .start());
        }
        MatMul.warmUp();
        // Until C2 has compiled the vector kernels and the engine, runs go through the interpreter and C1: each run
        // must agree with the first (itself a tier-independence check), and the last is the compiled reference.
        Map<String, float[]> first = TierProbe.compute();
        compiled = first;
        for (int i = 0; i < 8; i++) {
            Map<String, float[]> again = TierProbe.compute();
            assertSameBits(again, first, "run " + (i + 2) + " in this JVM");
            compiled = again;
        }
    }

    @AfterAll
    static void stopChildren() {
        CHILDREN.values().forEach(Process::destroyForcibly);
    }

    private static Path file(String tier) {
        return dir.resolve("bits" + TIERS.indexOf(tier) + ".bin");
    }

    private static Path log(String tier) {
        return dir.resolve("log" + TIERS.indexOf(tier) + ".txt");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-Xint", "-XX:TieredStopAtLevel=1"})
    void childJvmInOneTier_sameBitsAsWarmedUpC2(String tier) throws Exception {
        Process p = CHILDREN.get(tier);
        boolean done = p.waitFor(180, TimeUnit.SECONDS);
        String log = Files.readString(log(tier));
        assertThat(done).as("child JVM %s finished in 180 s; its output: %s", tier, log).isTrue();
        assertThat(p.exitValue()).as("child JVM %s exit; its output: %s", tier, log).isZero();
        assertSameBits(TierProbe.read(file(tier)), compiled, tier);
    }

    private static void assertSameBits(Map<String, float[]> actual, Map<String, float[]> expected, String where) {
        assertThat(actual.keySet()).containsExactlyElementsOf(expected.keySet());
        for (var e : expected.entrySet()) {
            float[] a = actual.get(e.getKey());
            float[] b = e.getValue();
            assertThat(a).as("%s: %s length", where, e.getKey()).hasSameSizeAs(b);
            for (int i = 0; i < b.length; i++) {
                if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                    throw new AssertionError(where + ": " + e.getKey() + " [" + i + "] = " + a[i] + " ("
                            + Integer.toHexString(Float.floatToRawIntBits(a[i])) + "), compiled C2 gives " + b[i]
                            + " (" + Integer.toHexString(Float.floatToRawIntBits(b[i])) + ")");
                }
            }
        }
    }
}
