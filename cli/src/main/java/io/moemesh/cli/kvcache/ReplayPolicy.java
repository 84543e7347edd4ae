package io.moemesh.cli.kvcache;

import java.util.Arrays;
import java.util.stream.Collectors;

/** The policies {@code kvcache replay --policy} knows, by name. */
enum ReplayPolicy {
    /** {@code ConversationPolicy}: prefix- and conversation-aware, strength chosen online (the default). */
    CONVERSATION("conversation"),
    /** Least recently used in both tiers, everything admitted (the baseline). */
    LRU("lru");

    final String label;

    ReplayPolicy(String label) {
        this.label = label;
    }

    /** @throws IllegalArgumentException naming the known policies */
    static ReplayPolicy named(String name) {
        for (ReplayPolicy p : values()) {
            if (p.label.equals(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException("--policy: unknown policy '" + name + "'; known: " + names());
    }

    static String names() {
        return Arrays.stream(values()).map(p -> p.label).collect(Collectors.joining(", "));
    }
}
