package io.moemesh.kvcache.policy;

import java.util.Objects;

/**
 * The policy objects one {@code TieredKvStore} is built with, made together by {@link StorePolicy#create} because a
 * policy like {@link ConversationPolicy} is one shared state behind all of them.
 *
 * @param dram      DRAM's eviction order
 * @param lower     the lower (SSD or CSD) tier's eviction order
 * @param admission whether a new block is stored at all
 * @param observer  told each request's chain (on Lookup) before its blocks are used
 */
public record StorePolicies(EvictionPolicy dram, EvictionPolicy lower, AdmissionPolicy admission,
                            ChainObserver observer) {
    public StorePolicies {
        Objects.requireNonNull(dram, "dram");
        Objects.requireNonNull(lower, "lower");
        Objects.requireNonNull(admission, "admission");
        Objects.requireNonNull(observer, "observer");
    }
}
