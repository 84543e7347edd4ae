package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;

/**
 * Random admissions, chunked steps, failed steps, preemptions and cancellations on a small pool (the scheduler's
 * moves, in any order): after every move each block is held, cached or free exactly once, and every running
 * sequence reads its own prefix at every position it computed or got from the cache.
 */
class PrefixCachingPropertyTest {
    private static final int BLOCKS = 12;

    /** A running sequence as the scheduler sees it: its context and how much of it is in the cache. */
    private record Run(int[] tokens, String tenant, int[] computed) {
    }

    @Property(tries = 300)
    void anyOrderOfSchedulerMoves_leaksNoBlock_andEverySequenceHoldsItsOwnTokens(@ForAll long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        KvDriver kv = new KvDriver(BLOCKS);
        // three prompt families with common prefixes, so lookups hit, miss and stop half-way
        int[][] families = {KvDriver.tokens(40, 1), KvDriver.tokens(40, 2), KvDriver.tokens(40, 1).clone()};
        families[2][9] = 999;
        Map<Long, Run> running = new HashMap<>();
        long next = 1;
        for (int move = 0; move < 80; move++) {
            int what = r.nextInt(10);
            List<Long> ids = new ArrayList<>(running.keySet());
            if (what < 3 || ids.isEmpty()) {
                long id = next++;
                int[] context = java.util.Arrays.copyOf(families[r.nextInt(3)], 1 + r.nextInt(30));
                String tenant = r.nextBoolean() ? "a" : "b";
                int cached = kv.admit(id, context, tenant);
                assertThat(cached % KvDriver.B).isZero();
                assertThat(cached).isLessThan(context.length);
                if (!kv.cache.ensureCapacity(id, Math.min(context.length, cached + 1))) {
                    kv.cache.release(id); // the scheduler's admission that found no room
                } else {
                    running.put(id, new Run(context, tenant, new int[] {cached}));
                }
            } else {
                long id = ids.get(r.nextInt(ids.size()));
                Run run = running.get(id);
                int done = run.computed[0];
                if (what < 8 && done < run.tokens.length) {
                    int to = Math.min(run.tokens.length, done + 1 + r.nextInt(6));
                    if (!kv.cache.ensureCapacity(id, to)) {
                        kv.cache.release(id); // preempted
                        running.remove(id);
                    } else if (what == 7) {
                        kv.step(id, run.tokens, done, to, run.tenant, false); // the engine failed: the sequence ends
                        kv.cache.release(id);
                        running.remove(id);
                    } else {
                        kv.step(id, run.tokens, done, to, run.tenant, true);
                        run.computed[0] = to;
                    }
                } else {
                    kv.cache.release(id); // finished or cancelled
                    running.remove(id);
                }
            }
            kv.assertAccounted();
            for (Map.Entry<Long, Run> e : running.entrySet()) {
                kv.assertHolds(e.getKey(), e.getValue().tokens, e.getValue().computed[0]);
            }
        }
        for (long id : running.keySet()) {
            kv.cache.release(id);
        }
        kv.assertAccounted();
        assertThat(kv.cache.usedBlocks()).isZero();
    }
}
