package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.List;

/**
 * Drives a {@link PrefixCachingKvCache} the way the engine and the scheduler do, without a model: one layer, a
 * KV dim of 1, and as the "key" of each position a marker of the whole prefix up to it, so a sequence that reads
 * a block filled by another sees whether it holds exactly its own tokens at exactly those positions.
 */
final class KvDriver {
    static final int B = 4;
    static final ModelFingerprint MODEL = ModelFingerprint.of(new byte[32]);
    final PrefixCachingKvCache cache;

    KvDriver(int blocks) {
        this(blocks, true);
    }

    KvDriver(int blocks, boolean enabled) {
        cache = new PrefixCachingKvCache(1, 1, B, blocks, MODEL, enabled);
    }

    /** A value of the prefix tokens[0..p] (exact in a float: below 2^24). */
    static float marker(int[] tokens, int p) {
        int h = 7;
        for (int i = 0; i <= p; i++) {
            h = (h * 31 + tokens[i] + 1) & 0xFFFFF;
        }
        return h;
    }

    static int[] tokens(int n, int seed) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = (seed * 1000 + i * 7) % 997;
        }
        return t;
    }

    /** Admission: the cached prefix. */
    int admit(long id, int[] tokens, String tenant) {
        return cache.acquirePrefix(id, tokens, tenant);
    }

    /** One step computing positions [from, to) of the sequence; a failed one writes but never completes. */
    void step(long id, int[] tokens, int from, int to, String tenant, boolean completes) {
        assertThat(cache.ensureCapacity(id, to)).as("capacity for sequence %d up to %d", id, to).isTrue();
        int[] chunk = java.util.Arrays.copyOfRange(tokens, from, to);
        StepContext ctx = StepContext.of(List.of(new SequenceStep(id, chunk, from, SequenceStep.Logits.LAST, false,
                tenant, SequenceStep.Phase.PREFILL)));
        cache.stepStarted(ctx);
        int[] table = cache.blockTable(id);
        for (int p = from; p < to; p++) {
            cache.keys(0)[table[p / B] * B + p % B] = marker(tokens, p);
        }
        if (completes) {
            cache.stepCompleted(ctx);
        }
    }

    /** Admission and the prefill of the rest in one step; returns the cached prefix. */
    int prefill(long id, int[] tokens, String tenant) {
        int cached = admit(id, tokens, tenant);
        step(id, tokens, cached, tokens.length, tenant, true);
        return cached;
    }

    /** The sequence's cache holds exactly its own prefix markers at positions [0, length). */
    void assertHolds(long id, int[] tokens, int length) {
        int[] table = cache.blockTable(id);
        for (int p = 0; p < length; p++) {
            assertThat(cache.keys(0)[table[p / B] * B + p % B]).as("sequence %d position %d", id, p)
                    .isEqualTo(marker(tokens, p));
        }
    }

    /** No block leaked or counted twice: held + cached + free = total, and the bookkeeping agrees. */
    void assertAccounted() {
        int held = cache.audit();
        assertThat(held + cache.cachedBlocks() + cache.freeBlocks()).isEqualTo(cache.totalBlocks());
        assertThat(held).isEqualTo(cache.usedBlocks());
    }
}
