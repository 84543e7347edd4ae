package io.moemesh.service.kvcache;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * A {@code Get} stream's replies assembled into block payloads, each checked against the contract before it is
 * used: replies for the blocks in request order, a block's chunks in order at the offsets they claim, exactly a
 * block's bytes, then {@code last}. The leading run of found blocks is the answer: it ends at the first block not
 * found (the service's miss) or at the first reply that breaks the contract ({@link BadReplyException}, raised only
 * when no block came before it: a run of good blocks is still usable).
 *
 * <p>A block of one chunk is the array the marshaller read it into ({@link GetReply#blockArray}); the later chunks
 * of a larger block are copied into its first chunk's array. So a block arrives with one copy of its bytes.
 */
public final class GetBlocks {
    /** A reply broke the Get contract; the message says which block and how. */
    public static final class BadReplyException extends RuntimeException {
        BadReplyException(String message) {
            super(message);
        }
    }

    private GetBlocks() {
    }

    /**
     * The payloads of the leading run of the {@code requested} blocks that the replies carry, block 0 first.
     *
     * @param replies    the call's replies (a blocking stub's iterator); read until the run ends, not further
     * @param requested  the number of hashes requested
     * @param blockBytes the bytes of one block of the layout
     * @throws BadReplyException when the first block's replies break the contract
     */
    public static List<byte[]> read(Iterator<GetReply> replies, int requested, int blockBytes) {
        List<byte[]> out = new ArrayList<>();
        try {
            byte[] block = null;
            int filled = 0;
            while (out.size() < requested && replies.hasNext()) {
                GetReply r = replies.next();
                if (r.index() != out.size()) {
                    throw bad("block " + Integer.toUnsignedString(r.index()) + " sent while block " + out.size()
                            + " was expected");
                }
                if (!r.found()) {
                    if (block != null) {
                        throw bad("block " + out.size() + " reported missing after " + filled + " of its bytes");
                    }
                    return out;
                }
                int n = r.length();
                if (r.offset() != filled || filled + (long) n > blockBytes) {
                    throw bad("block " + out.size() + ": a chunk at offset " + Long.toUnsignedString(r.offset())
                            + " of " + n + " bytes after " + filled + " of " + blockBytes);
                }
                if (block == null) {
                    block = r.blockArray(blockBytes);
                    if (block == null) {
                        block = new byte[blockBytes];
                        r.data().get(r.data().position(), block, 0, n);
                    }
                } else {
                    r.data().get(r.data().position(), block, filled, n);
                }
                filled += n;
                if (r.last()) {
                    if (filled != blockBytes) {
                        throw bad("block " + out.size() + " ended after " + filled + " of " + blockBytes + " bytes");
                    }
                    out.add(block);
                    block = null;
                    filled = 0;
                }
            }
            if (block != null) {
                throw bad("block " + out.size() + ": the stream ended after " + filled + " of " + blockBytes
                        + " bytes");
            }
            return out;
        } catch (BadReplyException e) {
            if (out.isEmpty()) {
                throw e;
            }
            return out;
        }
    }

    private static BadReplyException bad(String message) {
        return new BadReplyException(message);
    }
}
