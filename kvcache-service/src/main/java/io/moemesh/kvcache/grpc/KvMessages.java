package io.moemesh.kvcache.grpc;

import com.google.protobuf.ByteString;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.TierKind;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.ModelStats;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.proto.kvcache.v1.TierStats;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code kvcache.v1} ⇄ the domain: the request checks every RPC shares (model fingerprint, layout, hashes) and
 * the mapping of tiers and counters. Messages name the proto field that is wrong.
 */
final class KvMessages {
    /** Hashes one request may carry (Lookup, Get, Pin, Unpin, Attend): 65,536 blocks = 1M tokens at 16 a block. */
    static final int MAX_CHAIN_BLOCKS = 65_536;
    /** Largest data chunk of a GetResponse: under every gRPC client's 4 MiB default inbound limit. */
    static final int MAX_CHUNK_BYTES = 1 << 20;

    private KvMessages() {
    }

    /**
     * The served model a request names, its layout checked against the model's and the service's.
     *
     * @throws IllegalArgumentException naming the field when the request is malformed or not the model's layout
     * @throws IllegalStateException    for a fingerprint not served, or a block size other than the service's
     */
    static ServedModel model(ServedModels models, ByteString fingerprint, boolean hasLayout, BlockLayout layout) {
        if (fingerprint.isEmpty()) {
            throw new IllegalArgumentException("model_fingerprint is required: the 32-byte ModelFingerprint the block "
                    + "hashes were computed with");
        }
        ServedModel m = models.find(fingerprint.toByteArray());
        checkLayout(m, hasLayout ? layout : BlockLayout.getDefaultInstance());
        return m;
    }

    private static void checkLayout(ServedModel m, BlockLayout l) {
        KvLayout kv = m.layout();
        if (l.getBlockTokens() == 0) {
            throw new IllegalArgumentException("layout.block_tokens is required: the gateway's block size (tokens per "
                    + "block)");
        }
        if (Integer.toUnsignedLong(l.getBlockTokens()) != kv.blockTokens()) {
            throw new IllegalStateException("layout.block_tokens: the request's blocks have "
                    + Integer.toUnsignedLong(l.getBlockTokens()) + " tokens, this kvcache-service stores blocks of "
                    + kv.blockTokens() + " (moemesh.kvcache.block-tokens): configure the gateway and the service with "
                    + "the same block size");
        }
        field("layout.num_layers", l.getNumLayers(), kv.layers(), m.name(), "layers");
        field("layout.num_kv_heads", l.getNumKvHeads(), kv.kvHeads(), m.name(), "KV heads");
        field("layout.head_dim", l.getHeadDim(), kv.headDim(), m.name(), "head dimensions");
    }

    private static void field(String name, int got, int want, String model, String what) {
        if (got != 0 && Integer.toUnsignedLong(got) != want) {
            throw new IllegalArgumentException(name + ": " + Integer.toUnsignedLong(got) + ", but model " + model
                    + " has " + want + " " + what);
        }
    }

    /** The layout of a model as the wire says it (all fields set). */
    static BlockLayout layout(KvLayout kv) {
        return BlockLayout.newBuilder().setBlockTokens(kv.blockTokens()).setNumLayers(kv.layers())
                .setNumKvHeads(kv.kvHeads()).setHeadDim(kv.headDim()).build();
    }

    /**
     * The keys of a {@code repeated bytes} field of hashes.
     *
     * @param min fewest hashes accepted (0 or 1)
     */
    static List<BlockKey> keys(List<ByteString> hashes, String field, int min) {
        if (hashes.size() < min || hashes.size() > MAX_CHAIN_BLOCKS) {
            throw new IllegalArgumentException(field + ": " + hashes.size() + " hashes, need " + min + ".."
                    + MAX_CHAIN_BLOCKS);
        }
        List<BlockKey> keys = new ArrayList<>(hashes.size());
        for (int i = 0; i < hashes.size(); i++) {
            keys.add(key(hashes.get(i), field + "[" + i + "]"));
        }
        return keys;
    }

    static BlockKey key(ByteString hash, String field) {
        if (hash.size() != BlockKey.BYTES) {
            throw new IllegalArgumentException(field + ": a block hash has " + BlockKey.BYTES + " bytes, got "
                    + hash.size());
        }
        return BlockKey.of(hash.toByteArray());
    }

    static Tier tier(TierKind kind) {
        return switch (kind) {
            case DRAM -> Tier.TIER_DRAM;
            case SSD -> Tier.TIER_SSD;
            case CSD -> Tier.TIER_CSD;
        };
    }

    static ModelStats stats(ServedModel m) {
        io.moemesh.kvcache.tier.StoreStats s = m.store().stats();
        return ModelStats.newBuilder().setModel(m.name())
                .setModelFingerprint(ByteString.copyFrom(m.fingerprint().bytes())).setLayout(layout(m.layout()))
                .addTiers(tierStats(Tier.TIER_DRAM, s.dram()))
                .addTiers(tierStats(tier(m.store().lower().kind()), s.lower()))
                .setDemotions(s.demotions()).setPromotions(s.promotions()).setDeclined(s.declined()).build();
    }

    private static TierStats tierStats(Tier tier, io.moemesh.kvcache.tier.TierStats t) {
        return TierStats.newBuilder().setTier(tier).setHits(t.hits()).setMisses(t.misses()).setBytesRead(t.bytesRead())
                .setBytesWritten(t.bytesWritten()).setEvictions(t.evictions()).setChecksumFailures(t.checksumFailures())
                .setBlocks(t.blocks()).setUsedBytes(t.usedBytes()).setCapacityBytes(t.capacityBytes()).build();
    }
}
