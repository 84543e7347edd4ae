package io.moemesh.kvcache.policy;

/**
 * The eviction order of {@link ConversationPolicy}: lowest {@code priority} first, and among equal priorities the
 * deepest chain position first, so a chain loses its tail before its head (a cached block whose predecessor is gone
 * can never be part of a prefix hit; vLLM's and SGLang's radix-tree eviction take leaves first for the same reason).
 *
 * @param priority the block's key: the policy's clock at its latest touch plus its conversation bonus (never lowered)
 * @param depth    its position in the chain that last touched it
 * @param seq      insertion order, the final tie-break (earlier first), so the order is total and deterministic
 */
record PrefixPriority(double priority, int depth, long seq) implements Comparable<PrefixPriority> {
    @Override
    public int compareTo(PrefixPriority o) {
        int c = Double.compare(priority, o.priority);
        if (c != 0) {
            return c;
        }
        c = Integer.compare(o.depth, depth);
        return c != 0 ? c : Long.compare(seq, o.seq);
    }
}
