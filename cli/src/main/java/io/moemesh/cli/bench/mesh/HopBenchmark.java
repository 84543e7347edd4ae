package io.moemesh.cli.bench.mesh;

import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.grpc.TensorCodec;
import java.io.PrintWriter;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The per-layer hop gateway → expert-service → gateway with a no-op backend, next to an (almost) empty
 * message on the same stream and a memcpy of the payload, all measured in the same run. Goal (issue 13):
 * p50 ≤ 1.5 × (empty round trip + 3 × memcpy) and p99 ≤ 3 × p50 ({@link Row#goalMet}); reported against 100 µs,
 * one Mixtral expert on an H200.
 */
final class HopBenchmark {
    /** Goal (issue 13): hop p50 ≤ 1.5 × (empty round trip + 3 × memcpy). */
    static final double GOAL_FACTOR = 1.5;
    /** Goal (issue 13): hop p99 ≤ 3 × hop p50. */
    static final long TAIL_FACTOR = 3;

    /** Warm-up rounds at least, before the JIT's share of the CPU counts ({@link JitSettledWarmUp}). */
    static final int MIN_WARMUP_ROUNDS = 4;

    private final HopClient client;
    private final int hidden;
    private final int warmup;
    private final int iterations;
    private final Map<String, Long> pids;

    /**
     * @param warmup round trips per warm-up round; rounds repeat until the compiler threads of {@code pids} (this
     *               JVM and the instance's) settled, as {@code --decode} warms up ({@link JitSettledWarmUp})
     */
    HopBenchmark(HopClient client, int hidden, int warmup, int iterations, Map<String, Long> pids) {
        this.client = client;
        this.hidden = hidden;
        this.warmup = warmup;
        this.iterations = iterations;
        this.pids = pids;
    }

    /** @param warmupRounds warm-up rounds of {@code --warmup} round trips the row took to settle */
    record Row(int hidden, int tokens, DType wire, long payloadBytes, Percentiles hop, Percentiles empty,
               Percentiles memcpy, int warmupRounds) {
        /** The floor: an empty round trip plus three copies of the payload, both measured in this run. */
        long floor() {
            return empty.p50() + 3 * memcpy.p50();
        }

        /** The goal: p50 within 1.5× the floor, and a tail (p99) within 3× the p50. */
        long goal() {
            return Math.round(GOAL_FACTOR * floor());
        }

        boolean goalMet() {
            return hop.p50() <= goal() && hop.p99() <= TAIL_FACTOR * hop.p50();
        }
    }

    Row run(int tokens, DType wire) throws Exception {
        SplittableRandom r = new SplittableRandom(tokens * 31L + hidden);
        float[] x = new float[tokens * hidden];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] counts = new int[tokens];
        int[] experts = new int[2 * tokens];
        float[] weights = new float[2 * tokens];
        for (int t = 0; t < tokens; t++) {
            counts[t] = 2;
            experts[2 * t + 1] = 1;
            weights[2 * t] = 0.6f;
            weights[2 * t + 1] = 0.4f;
        }
        ExpertCall hop = new ExpertCall(0, 0, x, tokens, hidden, counts, experts, weights);
        // Zero tokens: the instance answers at once with INVALID_ARGUMENT — a round trip with no payload (it
        // includes building the client's StatusRuntimeException, a few µs).
        ExpertCall empty = new ExpertCall(0, 0, new float[0], 0, hidden, new int[0], new int[0], new float[0]);
        client.roundTrip(hop, wire, false);
        long payload = TensorCodec.encode(x, 0, tokens, hidden, wire).getData().size();
        byte[] src = new byte[(int) payload];
        byte[] dst = new byte[(int) payload];
        long[] hops = new long[iterations];
        long[] empties = new long[iterations];
        long[] copies = new long[iterations];
        // Until the JIT settles: the no-op instance compiles its per-message code (gRPC, Netty, protobuf) for
        // thousands of round trips, and those compilations, on the same two cores, were most of the p99 of a
        // fixed 500-round-trip warm-up (docs/performance.md, "Reused tensor arrays and vector bf16").
        JitSettledWarmUp.Outcome settled = warmup == 0 ? new JitSettledWarmUp.Outcome(0, 0)
                : JitSettledWarmUp.run(pids, MIN_WARMUP_ROUNDS, round -> {
                    for (int i = 0; i < warmup; i++) {
                        client.roundTrip(hop, wire, false);
                        client.roundTrip(empty, wire, true);
                        System.arraycopy(src, 0, dst, 0, src.length);
                    }
                });
        for (int i = 0; i < iterations; i++) {
            // Interleaved so that machine noise hits all three alike.
            hops[i] = client.roundTrip(hop, wire, false);
            empties[i] = client.roundTrip(empty, wire, true);
            long t0 = System.nanoTime();
            System.arraycopy(src, 0, dst, 0, src.length);
            copies[i] = System.nanoTime() - t0;
            src[i % src.length] ^= dst[(i * 7) % dst.length];
        }
        return new Row(hidden, tokens, wire, payload, Percentiles.of(hops, iterations), Percentiles.of(empties, iterations),
                Percentiles.of(copies, iterations), settled.runs());
    }

    static void printHeader(PrintWriter out) {
        out.println("| hidden | tokens | wire | payload KiB | hop p50 µs | hop p99 µs | empty RT p50 µs | memcpy p50 µs "
                + "| goal: 1.5 × (RT + 3×memcpy) µs | met (and p99 ≤ 3 × p50) | vs 100 µs (H200 expert) | transport |");
        out.println("|---|---|---|---|---|---|---|---|---|---|---|---|");
    }

    static void print(PrintWriter out, Row r, String transport) {
        long goal = r.goal();
        out.printf(java.util.Locale.ROOT, "| %d | %d | %s | %.1f | %s | %s | %s | %s | %s | %s | %.2f× | %s |%n", r.hidden(),
                r.tokens(), r.wire() == DType.DTYPE_BF16 ? "bf16" : "f32", r.payloadBytes() / 1024.0,
                Percentiles.micros(r.hop().p50()), Percentiles.micros(r.hop().p99()), Percentiles.micros(r.empty().p50()),
                Percentiles.micros(r.memcpy().p50()), Percentiles.micros(goal), r.goalMet() ? "yes" : "no",
                r.hop().p50() / 100_000.0, transport);
        out.flush();
    }
}
