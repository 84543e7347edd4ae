package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;

/** Exclusive capacity accounting, audited after random sequences of store operations. */
class TieredKvStorePropertyTest {
    enum Op { PUT, GET, REMOVE, PIN, UNPIN }

    record Step(Op op, int block) {
    }

    @Provide
    Arbitrary<List<Step>> steps() {
        Arbitrary<Step> step = Combinators.combine(
                Arbitraries.frequency(Tuple.of(4, Op.PUT), Tuple.of(3, Op.GET), Tuple.of(1, Op.REMOVE),
                        Tuple.of(1, Op.PIN), Tuple.of(1, Op.UNPIN)), Arbitraries.integers().between(0, 15))
                .as(Step::new);
        return step.list().ofMinSize(1).ofMaxSize(80);
    }

    @Property(tries = 60)
    void everyBlockIsInAtMostOneTier_andEachTiersBytesAreItsBlocks(
            @ForAll("steps") List<Step> steps, @ForAll @IntRange(min = 1, max = 4) int dramBlocks,
            @ForAll @IntRange(min = 1, max = 6) int ssdBlocks) throws IOException {
        Path dir = Files.createTempDirectory("kv-prop");
        Map<Integer, Integer> pins = new HashMap<>();
        try (TieredKvStore s = new TieredKvStore(LAYOUT, (long) dramBlocks * BLOCK_BYTES, new LruPolicy(),
                SsdTier.open(SsdConfig.defaults(dir, (long) ssdBlocks * RECORD_BYTES).withFsync(FsyncPolicy.NEVER),
                        LAYOUT, TestBlocks.MODEL, new LruPolicy()),
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            for (Step st : steps) {
                switch (st.op()) {
                    case PUT -> s.put(block(st.block()), AccessHint.atChainPosition(st.block()));
                    case GET -> s.get(key(st.block())).ifPresent(
                            b -> assertThat(b.block().sameContent(block(st.block()))).isTrue());
                    case REMOVE -> {
                        if (s.remove(key(st.block()))) {
                            pins.remove(st.block());
                        }
                    }
                    case PIN -> {
                        if (s.pin(key(st.block()))) {
                            pins.merge(st.block(), 1, Integer::sum);
                        }
                    }
                    case UNPIN -> {
                        if (s.unpin(key(st.block()))) {
                            pins.computeIfPresent(st.block(), (k, n) -> n == 1 ? null : n - 1);
                        }
                    }
                }
                audit(s, dramBlocks, ssdBlocks, pins);
            }
        } finally {
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) {
                    Files.delete(p);
                }
            }
            Files.delete(dir);
        }
    }

    private static void audit(TieredKvStore s, int dramBlocks, int ssdBlocks, Map<Integer, Integer> pins) {
        long inDram = 0;
        long inSsd = 0;
        for (int i = 0; i < 16; i++) {
            boolean d = s.dram().contains(key(i));
            boolean l = s.lower().contains(key(i));
            assertThat(d && l).as("block %d in both tiers", i).isFalse();
            inDram += d ? 1 : 0;
            inSsd += l ? 1 : 0;
            boolean pinned = pins.containsKey(i);
            assertThat(s.isPinned(key(i))).as("block %d pinned", i).isEqualTo(pinned);
            if (pinned) {
                assertThat(d || l).as("pinned block %d was evicted", i).isTrue();
                assertThat(d ? s.dram().isPinned(key(i)) : s.lower().isPinned(key(i))).isTrue();
            }
        }
        assertThat(s.dram().blockCount()).isEqualTo(inDram);
        assertThat(s.lower().blockCount()).isEqualTo(inSsd);
        assertThat(s.dram().usedBytes()).isEqualTo(inDram * BLOCK_BYTES).isLessThanOrEqualTo(
                (long) dramBlocks * BLOCK_BYTES);
        assertThat(s.lower().usedBytes()).isEqualTo(inSsd * RECORD_BYTES).isLessThanOrEqualTo(
                (long) ssdBlocks * RECORD_BYTES);
        assertThat(s.stats().usedBytes()).isEqualTo(s.dram().usedBytes() + s.lower().usedBytes());
    }
}
