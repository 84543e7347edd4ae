package io.moemesh.model.kv;

import io.moemesh.model.engine.BlockPool;
import java.util.Arrays;

/**
 * What each pool block with a hash was computed from: the previous block's hash (null for block 0), its tokens,
 * tenant and chain position. {@link PrefixBlockPool} keeps it so a block can leave the process (write-back,
 * swap-out) with everything another tier needs to recompute and check its hash. Engine thread only.
 */
final class BlockLineage {
    private final int blockTokens;
    private final BlockHash[] parentOf;
    private final String[] tenantOf;
    private final int[] positionOf;
    private final int[] tokensOf;

    BlockLineage(int numBlocks, int blockTokens) {
        this.blockTokens = blockTokens;
        this.parentOf = new BlockHash[numBlocks];
        this.tenantOf = new String[numBlocks];
        this.positionOf = new int[numBlocks];
        this.tokensOf = new int[numBlocks * blockTokens];
    }

    /** Records block {@code block}'s origin: {@code tokens} holds its {@code blockTokens} tokens from index 0. */
    void remember(int block, BlockHash parent, int[] tokens, String tenant, int position) {
        parentOf[block] = parent;
        tenantOf[block] = tenant;
        positionOf[block] = position;
        System.arraycopy(tokens, 0, tokensOf, block * blockTokens, blockTokens);
    }

    /** The hash of the block before it in its chain (null for block 0). */
    BlockHash parent(int block) {
        return parentOf[block];
    }

    /** The block's position in its chain (block 0 = the first {@code blockTokens} tokens of a context). */
    int position(int block) {
        return positionOf[block];
    }

    /** A copy of block {@code block} with hash {@code hash}: its lineage, and its keys and values from the pool. */
    BlockContents copy(int block, BlockHash hash, BlockPool pool) {
        return new BlockContents(hash, parentOf[block], Arrays.copyOfRange(tokensOf, block * blockTokens,
                (block + 1) * blockTokens), tenantOf[block], positionOf[block], pool.copyKeys(block),
                pool.copyValues(block));
    }
}
