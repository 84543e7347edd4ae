package io.moemesh.kvcache.serving;

import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.ModelFingerprint;
import java.util.Objects;

/**
 * One model the service stores blocks of.
 *
 * @param name        the model directory's name (what the gateway calls the model; metrics and Stats label)
 * @param fingerprint the {@link ModelFingerprint} its block hashes are salted with: how requests name the model
 * @param numHeads    the model's query heads (Attend's query shape)
 * @param layout      the shape of its blocks: the model's layers, KV heads and head dim, the service's block size
 * @param store       DRAM over {@code ssd} (or a CSD tier around it)
 * @param ssd         the SSD tier under the store: its segment files, sync and compaction
 */
public record ServedModel(String name, ModelFingerprint fingerprint, int numHeads, KvLayout layout,
                          TieredKvStore store, SsdTier ssd) {
    public ServedModel {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(fingerprint, "fingerprint");
        Objects.requireNonNull(layout, "layout");
        Objects.requireNonNull(store, "store");
        Objects.requireNonNull(ssd, "ssd");
        if (numHeads <= 0 || numHeads % layout.kvHeads() != 0) {
            throw new IllegalArgumentException("model " + name + ": " + numHeads
                    + " attention heads is not a positive multiple of its " + layout.kvHeads() + " KV heads");
        }
    }
}
