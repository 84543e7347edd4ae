package io.moemesh.service.kvcache;

import io.moemesh.proto.kvcache.v1.Tier;
import java.nio.ByteBuffer;

/**
 * One {@code kvcache.v1.GetResponse} (a chunk of one block, or the miss of one) as {@link GetReplyMarshaller}
 * writes and reads it: the same fields, the chunk's bytes as a {@link ByteBuffer} instead of a {@code ByteString}.
 *
 * <p>Received, {@code data} wraps a heap array the reply owns: when the chunk is a block's first (offset 0 sent
 * before the data, as every protobuf writer does) and no larger than the block, the array is a whole block's
 * ({@link #blockArray}), so the reader fills in the later chunks and keeps the array as the block.
 *
 * @param index  the block's index in the request's hashes
 * @param found  false: the block is not stored (the block's only message)
 * @param tier   the tier's enum number ({@link Tier}), 0 when unset
 * @param offset the chunk's byte offset in the block
 * @param data   the chunk's bytes, position to limit (empty for a miss)
 * @param last   true on the block's last message
 */
public record GetReply(int index, boolean found, int tier, long offset, ByteBuffer data, boolean last) {
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0).asReadOnlyBuffer();

    public GetReply {
        data = data == null ? EMPTY : data;
    }

    /** The reply for a block that is not stored. */
    public static GetReply miss(int index) {
        return new GetReply(index, false, 0, 0, EMPTY, true);
    }

    /** One chunk of a found block; {@code data} is sent from its position to its limit and is not modified. */
    public static GetReply chunk(int index, Tier tier, long offset, ByteBuffer data, boolean last) {
        return new GetReply(index, true, tier.getNumber(), offset, data, last);
    }

    /** Bytes in the chunk. */
    public int length() {
        return data.remaining();
    }

    /**
     * The array holding this chunk at its offset when it is a whole block's: the chunk starts the block and was
     * read into an array of exactly {@code blockBytes}, so the block's later chunks can be written into it (no copy
     * of this one). Null otherwise.
     */
    public byte[] blockArray(int blockBytes) {
        if (offset != 0 || !data.hasArray() || data.isReadOnly() || data.arrayOffset() != 0 || data.position() != 0) {
            return null;
        }
        byte[] a = data.array();
        return a.length == blockBytes ? a : null;
    }
}
