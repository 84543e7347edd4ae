package io.moemesh.kvcache.policy;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The eviction and admission policies a store can run, by the name {@code moemesh.kvcache.policy} and
 * {@code moemesh kvcache replay --policy} use. {@link #CONVERSATION} is the default: the best measured on the
 * Mooncake conversation trace (docs/performance.md, "KV-cache replay").
 */
public enum StorePolicy {
    /** {@link ConversationPolicy} shared by both tiers, admission included; told each chain on Lookup. */
    CONVERSATION("conversation"),
    /** {@link LruPolicy} in each tier, everything admitted (the baseline). */
    LRU("lru");

    private final String label;

    StorePolicy(String label) {
        this.label = label;
    }

    /** The name configuration and the CLI use. */
    public String label() {
        return label;
    }

    /**
     * The policy called {@code name} (case-insensitive, surrounding blanks ignored).
     *
     * @throws IllegalArgumentException naming the known policies
     */
    public static StorePolicy named(String name) {
        String n = name == null ? "" : name.strip().toLowerCase(Locale.ROOT);
        for (StorePolicy p : values()) {
            if (p.label.equals(n)) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown policy '" + name + "'; known: " + names());
    }

    /** The known names, comma-separated, the default first. */
    public static String names() {
        return Arrays.stream(values()).map(p -> p.label).collect(Collectors.joining(", "));
    }

    /**
     * Fresh policy objects for one store whose tiers together hold about {@code capacityBlocks} blocks (the
     * conversation policy sizes its shadow caches and metadata by it).
     */
    public StorePolicies create(int capacityBlocks) {
        if (capacityBlocks < 1) {
            throw new IllegalArgumentException("capacityBlocks must be ≥ 1, got " + capacityBlocks);
        }
        return switch (this) {
            case CONVERSATION -> {
                ConversationPolicy c = new ConversationPolicy(capacityBlocks);
                yield new StorePolicies(c.newTierPolicy(), c.newTierPolicy(), c, c);
            }
            case LRU -> new StorePolicies(new LruPolicy(), new LruPolicy(), AdmissionPolicy.ADMIT_ALL,
                    ChainObserver.NONE);
        };
    }
}
