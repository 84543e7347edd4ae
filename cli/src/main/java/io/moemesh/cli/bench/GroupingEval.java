package io.moemesh.cli.bench;

import io.moemesh.model.engine.MicroBatching;
import io.moemesh.model.engine.PredictedPathGrouping;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import io.moemesh.service.placement.EvenPlacement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What grouping decode sequences by predicted expert path ({@link PredictedPathGrouping}) saves on a routing
 * trace, counted, not timed: sequences of the trace decode together, one token each per step; at step t each
 * sequence's path is predicted by its token t − 1 (what the gateway knows at the start of a step) and its token
 * t's true path is what the micro-batches call. Per grouping: expert calls (Σ over micro-batches and layers of the
 * distinct experts: one expert GEMM each) and instance calls (Σ of the distinct instances holding them, placed as
 * {@code moemesh up} places them, {@link EvenPlacement}: one {@code ExpertBatch} hop each). Deterministic.
 */
final class GroupingEval {
    /** The groupings compared: the default, the predicted-path option, and the same with the true path (a bound). */
    static final List<String> GROUPINGS = List.of("contiguous", "predicted-path", "oracle");

    private GroupingEval() {
    }

    /**
     * @param steps            decode steps counted (of at least 2 sequences)
     * @param sequenceSteps    Σ sequences over those steps
     * @param locality         of a token's (layer, expert) pairs, the share its sequence's previous token had too
     * @param oneBatchExperts  expert calls with the step as one batch (no micro-batches)
     * @param expertCalls      per grouping (as {@link #GROUPINGS})
     * @param instanceCalls    per grouping, per instance count
     */
    record Result(int sequences, int steps, long sequenceSteps, double locality, long oneBatchExperts,
                  long[] expertCalls, long[][] instanceCalls, int[] instances) {
    }

    /**
     * @param segments each of the trace's token streams (a Mixtral problem, a FLAME sequence) cut into this many
     *                 contiguous sequences
     * @param maxSequences at most this many sequences (the first), 0 = all
     */
    static Result run(RouteTrace trace, int microBatches, int segments, int maxSequences, int[] instances) {
        List<List<TokenRoute>> sequences = sequences(trace, segments, maxSequences);
        int layers = trace.layers();
        int experts = trace.experts();
        int longest = sequences.stream().mapToInt(List::size).max().orElse(0);
        long[] expertCalls = new long[GROUPINGS.size()];
        long[][] instanceCalls = new long[GROUPINGS.size()][instances.length];
        long oneBatch = 0;
        long shared = 0;
        long pairs = 0;
        int steps = 0;
        long sequenceSteps = 0;
        MicroBatching split = new MicroBatching(microBatches, 2);
        for (int t = 1; t < longest; t++) {
            List<long[]> predicted = new ArrayList<>();
            List<long[]> truth = new ArrayList<>();
            for (List<TokenRoute> s : sequences) {
                if (t < s.size()) {
                    predicted.add(bits(s.get(t - 1), layers, experts));
                    truth.add(bits(s.get(t), layers, experts));
                }
            }
            int n = truth.size();
            if (n < 2) {
                continue;
            }
            steps++;
            sequenceSteps += n;
            for (int i = 0; i < n; i++) {
                shared += common(predicted.get(i), truth.get(i));
                pairs += common(truth.get(i), truth.get(i));
            }
            List<SequenceStep> decodes = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                decodes.add(SequenceStep.decode(i, 0, t));
            }
            int[] cuts = split.split(decodes);
            int parts = cuts.length - 1;
            int[] sizes = new int[parts];
            int[] contiguous = new int[n];
            for (int m = 0; m < parts; m++) {
                sizes[m] = cuts[m + 1] - cuts[m];
                for (int i = cuts[m]; i < cuts[m + 1]; i++) {
                    contiguous[i] = m;
                }
            }
            int[] rows = new int[n];
            java.util.Arrays.fill(rows, 1);
            int[][] groupings = {contiguous,
                PredictedPathGrouping.assign(rows, predicted.toArray(long[][]::new), sizes),
                PredictedPathGrouping.assign(rows, truth.toArray(long[][]::new), sizes)};
            oneBatch += calls(truth, new int[n], 1, trace, experts, 0)[0];
            for (int g = 0; g < groupings.length; g++) {
                expertCalls[g] += calls(truth, groupings[g], parts, trace, experts, 0)[0];
                for (int k = 0; k < instances.length; k++) {
                    instanceCalls[g][k] += calls(truth, groupings[g], parts, trace, experts, instances[k])[1];
                }
            }
        }
        return new Result(sequences.size(), steps, sequenceSteps, pairs == 0 ? 0 : (double) shared / pairs, oneBatch,
                expertCalls, instanceCalls, instances);
    }

    /** The trace's full-path tokens as sequences: streams by the key's first part, ordered by its second. */
    static List<List<TokenRoute>> sequences(RouteTrace trace, int segments, int maxSequences) {
        Map<Long, TreeMap<Long, TokenRoute>> streams = new TreeMap<>();
        for (TokenRoute token : trace.fullPaths()) {
            String[] key = token.key().split(":");
            if (key.length != 2) {
                throw new IllegalArgumentException("--trace: tokens must name their sequence (\"<sequence>:<position>\": "
                        + "Mixtral JSONL or FLAME decode CSV), got key \"" + token.key() + "\"");
            }
            streams.computeIfAbsent(Long.parseLong(key[0]), k -> new TreeMap<>()).put(Long.parseLong(key[1]), token);
        }
        List<List<TokenRoute>> out = new ArrayList<>();
        for (TreeMap<Long, TokenRoute> stream : streams.values()) {
            List<TokenRoute> tokens = new ArrayList<>(stream.values());
            for (int s = 0; s < segments; s++) {
                List<TokenRoute> part = tokens.subList(s * tokens.size() / segments, (s + 1) * tokens.size() / segments);
                if (part.size() >= 2 && (maxSequences == 0 || out.size() < maxSequences)) {
                    out.add(part);
                }
            }
        }
        return out;
    }

    private static long[] bits(TokenRoute token, int layers, int experts) {
        long[] bits = new long[(layers * experts + 63) / 64];
        for (int l = 0; l < layers; l++) {
            for (int e : token.experts()[l]) {
                int bit = l * experts + e;
                bits[bit >>> 6] |= 1L << bit;
            }
        }
        return bits;
    }

    private static int common(long[] a, long[] b) {
        int n = 0;
        for (int w = 0; w < a.length; w++) {
            n += Long.bitCount(a[w] & b[w]);
        }
        return n;
    }

    /** {expert calls, instance calls} of one step's micro-batches ({@code group[i]}: sequence i's). */
    private static long[] calls(List<long[]> truth, int[] group, int parts, RouteTrace trace, int experts,
                                int instances) {
        long expertCalls = 0;
        long instanceCalls = 0;
        int words = truth.getFirst().length;
        for (int m = 0; m < parts; m++) {
            long[] union = new long[words];
            for (int i = 0; i < truth.size(); i++) {
                if (group[i] == m) {
                    for (int w = 0; w < words; w++) {
                        union[w] |= truth.get(i)[w];
                    }
                }
            }
            for (int l = 0; l < trace.layers(); l++) {
                boolean[] held = new boolean[Math.max(instances, 1)];
                for (int e = 0; e < experts; e++) {
                    int bit = l * experts + e;
                    if ((union[bit >>> 6] & 1L << bit) != 0) {
                        expertCalls++;
                        if (instances > 0) {
                            int at = EvenPlacement.holder(e, trace.layerNumber(l), 0, instances);
                            instanceCalls += held[at] ? 0 : 1;
                            held[at] = true;
                        }
                    }
                }
            }
        }
        return new long[] {expertCalls, instanceCalls};
    }
}
