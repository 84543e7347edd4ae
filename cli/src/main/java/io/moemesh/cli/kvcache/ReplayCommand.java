package io.moemesh.cli.kvcache;

import io.moemesh.kvcache.policy.BeladyOracle;
import io.moemesh.kvcache.policy.StorePolicy;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh kvcache replay}: a prefix-cache trace (Mooncake JSONL, one block id per 512-token block) through the
 * real tiered store, no model. Each request hits the longest prefix of its chain stored in either tier, then all its
 * blocks are stored or touched. Prints requests, blocks, hit blocks and the hit rate (hit blocks ÷ blocks) of the
 * chosen policy, next to LRU and block-level Belady MIN at the same total capacity (computed offline).
 */
@Command(name = "replay", mixinStandardHelpOptions = true,
        description = "Replay a prefix-cache trace (JSONL with hash_ids, e.g. Mooncake's) through the real DRAM+SSD "
                + "store and print the prefix hit rate next to LRU and Belady MIN at the same capacity.")
public final class ReplayCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--trace", paramLabel = "FILE", description = "The trace, one JSON request per line (required).")
    Path trace;

    @Option(names = "--dram-blocks", paramLabel = "N", description = "DRAM tier capacity in blocks (required, ≥ 1).")
    Integer dramBlocks;

    @Option(names = "--ssd-blocks", paramLabel = "M", description = "SSD tier capacity in blocks (required, ≥ 1).")
    Integer ssdBlocks;

    @Option(names = "--policy", paramLabel = "NAME", defaultValue = "conversation",
            description = "Eviction/admission policy: conversation (default, the best we have) or lru.")
    String policy;

    @Option(names = "--per-request", paramLabel = "FILE",
            description = "Write one JSON line per request, {\"request\": i, \"hit_blocks\": h}, in file order.")
    Path perRequest;

    @Option(names = "--json", description = "End with one JSON line of the figures.")
    boolean json;

    @Override
    public Integer call() {
        if (trace == null) {
            throw new IllegalArgumentException("--trace FILE is required");
        }
        int dram = positive("--dram-blocks", dramBlocks);
        int ssd = positive("--ssd-blocks", ssdBlocks);
        if ((long) dram + ssd > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException("--dram-blocks + --ssd-blocks must be below " + Integer.MAX_VALUE / 2
                    + ", got " + ((long) dram + ssd));
        }
        StorePolicy chosen;
        try {
            chosen = StorePolicy.named(policy);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--policy: " + e.getMessage(), e);
        }
        PrefixTrace t = PrefixTrace.read(trace);
        long blocks = t.blocks();
        long[] hits = TraceReplay.replay(t, dram, ssd, chosen);
        long hitBlocks = sum(hits);
        long lruHits = chosen == StorePolicy.LRU ? hitBlocks : sum(TraceReplay.replay(t, dram, ssd, StorePolicy.LRU));
        List<List<Long>> chains = new ArrayList<>(t.requests().size());
        for (long[] r : t.requests()) {
            List<Long> c = new ArrayList<>(r.length);
            for (long id : r) {
                c.add(id);
            }
            chains.add(c);
        }
        long beladyHits = sum(BeladyOracle.prefixHits(chains, dram + ssd));
        if (perRequest != null) {
            writePerRequest(hits);
        }
        PrintWriter out = spec.commandLine().getOut();
        int distinct = t.distinctBlocks();
        out.printf(Locale.ROOT, "%s: %d requests, %d blocks (%d distinct)%n", trace, t.requests().size(), blocks,
                distinct);
        out.printf(Locale.ROOT, "capacity: %d DRAM + %d SSD = %d blocks (%.2f%% of the distinct blocks)%n", dram, ssd,
                dram + ssd, 100.0 * (dram + ssd) / distinct);
        out.printf(Locale.ROOT, "%-13s %10s %9s%n", "policy", "hit blocks", "hit rate");
        out.printf(Locale.ROOT, "%-13s %10d %9.4f%n", chosen.label(), hitBlocks, rate(hitBlocks, blocks));
        if (chosen != StorePolicy.LRU) {
            out.printf(Locale.ROOT, "%-13s %10d %9.4f%n", "lru", lruHits, rate(lruHits, blocks));
        }
        out.printf(Locale.ROOT, "%-13s %10d %9.4f%n", "belady (MIN)", beladyHits, rate(beladyHits, blocks));
        if (json) {
            out.printf(Locale.ROOT, "{\"requests\": %d, \"blocks\": %d, \"hit_blocks\": %d, \"hit_rate\": %s, "
                            + "\"lru_hit_rate\": %s, \"belady_hit_rate\": %s}%n", t.requests().size(), blocks,
                    hitBlocks, rate(hitBlocks, blocks), rate(lruHits, blocks), rate(beladyHits, blocks));
        }
        out.flush();
        return 0;
    }

    private static int positive(String option, Integer value) {
        if (value == null) {
            throw new IllegalArgumentException(option + " N is required");
        }
        if (value < 1) {
            throw new IllegalArgumentException(option + " must be at least 1, got " + value);
        }
        return value;
    }

    private void writePerRequest(long[] hits) {
        try (BufferedWriter w = Files.newBufferedWriter(perRequest, StandardCharsets.UTF_8)) {
            for (int i = 0; i < hits.length; i++) {
                w.write("{\"request\": " + i + ", \"hit_blocks\": " + hits[i] + "}\n");
            }
        } catch (IOException e) {
            throw new IllegalArgumentException("--per-request: cannot write " + perRequest + ": " + e.getMessage());
        }
    }

    private static long sum(long[] v) {
        long s = 0;
        for (long x : v) {
            s += x;
        }
        return s;
    }

    private static double rate(long hits, long blocks) {
        return blocks == 0 ? 0 : (double) hits / blocks;
    }
}
