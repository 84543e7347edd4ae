package io.moemesh.gateway.kv;

import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The gateway's paged KV cache: the engine's block pool (16-token blocks, a block table per sequence, a free
 * list) plus, for every full block, its chained prefix hash — SHA-256 of the parent block's hash, the block's
 * 16 token ids (int32 little-endian), the model id and the tenant salt (vLLM's prefix-caching key; the
 * kvcache.v1 draft documents the same layout). Blocks keyed this way can be offloaded to and restored from the
 * KV-cache service as they are. Engine thread only.
 */
public final class PrefixHashedKvCache implements KvCache {
    private static final byte[] ROOT = new byte[32];

    private final PagedKvCache pool;
    private final byte[] model;
    private final Map<Long, Sequence> sequences = new HashMap<>();

    private static final class Sequence {
        int[] tokens = new int[64];
        int length;
        final List<byte[]> hashes = new ArrayList<>();
        byte[] salt = new byte[0];
    }

    public PrefixHashedKvCache(PagedKvCache pool, String modelId) {
        this.pool = pool;
        this.model = modelId.getBytes(StandardCharsets.UTF_8);
    }

    /** Salts a sequence's hashes with its tenant, so tenants never share prefixes. */
    public void setTenant(long seqId, String tenant) {
        sequences.computeIfAbsent(seqId, k -> new Sequence()).salt = tenant.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public int blockTokens() {
        return pool.blockTokens();
    }

    @Override
    public boolean ensureCapacity(long seqId, int length) {
        return pool.ensureCapacity(seqId, length);
    }

    @Override
    public int[] blockTable(long seqId) {
        return pool.blockTable(seqId);
    }

    @Override
    public float[] keys(int layer) {
        return pool.keys(layer);
    }

    @Override
    public float[] values(int layer) {
        return pool.values(layer);
    }

    @Override
    public void stepStarted(StepContext step) {
        for (SequenceStep s : step.sequences()) {
            onTokens(s.seqId(), s.startPos(), s.tokens());
        }
    }

    private void onTokens(long seqId, int startPos, int[] tokens) {
        Sequence s = sequences.computeIfAbsent(seqId, k -> new Sequence());
        if (startPos < s.length) {
            // Recompute after preemption rewrites the same positions: drop what follows.
            s.length = startPos;
            while (s.hashes.size() * blockTokens() > startPos) {
                s.hashes.removeLast();
            }
        }
        if (startPos != s.length) {
            throw new IllegalStateException("sequence " + seqId + ": tokens at " + startPos + " but " + s.length + " known");
        }
        if (s.tokens.length < s.length + tokens.length) {
            s.tokens = Arrays.copyOf(s.tokens, Math.max(s.length + tokens.length, s.tokens.length * 2));
        }
        System.arraycopy(tokens, 0, s.tokens, s.length, tokens.length);
        s.length += tokens.length;
        int b = blockTokens();
        while ((s.hashes.size() + 1) * b <= s.length) {
            int block = s.hashes.size();
            byte[] parent = block == 0 ? ROOT : s.hashes.get(block - 1);
            s.hashes.add(hash(parent, s.tokens, block * b, b, s.salt));
        }
    }

    /** Chained prefix hashes of the sequence's full blocks, oldest first. */
    public List<byte[]> blockHashes(long seqId) {
        Sequence s = sequences.get(seqId);
        return s == null ? List.of() : List.copyOf(s.hashes);
    }

    @Override
    public void release(long seqId) {
        pool.release(seqId);
        sequences.remove(seqId);
    }

    public int freeBlocks() {
        return pool.freeBlocks();
    }

    public int totalBlocks() {
        return pool.totalBlocks();
    }

    private byte[] hash(byte[] parent, int[] tokens, int from, int n, byte[] salt) {
        try {
            MessageDigest d = MessageDigest.getInstance("SHA-256");
            d.update(parent);
            ByteBuffer buf = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) {
                buf.putInt(tokens[from + i]);
            }
            d.update(buf.array());
            d.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(model.length).array());
            d.update(model);
            d.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(salt.length).array());
            d.update(salt);
            return d.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is always available", e);
        }
    }
}
