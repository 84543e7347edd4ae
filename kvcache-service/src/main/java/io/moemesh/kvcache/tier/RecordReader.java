package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@link SsdTier#get}'s record reads: each read goes into a direct buffer taken from a small pool of reused ones
 * (one per concurrent reader), is CRC32C-checked there and copied into the block's own heap array in the same pass
 * ({@link Records#verifyInto}). A read into a heap buffer costs the same kernel copy plus the JDK's copy out of its
 * temporary direct buffer and then a separate CRC pass over the copy; a new direct buffer per record was tried and
 * failed (256 KiB direct allocations per block exhaust the direct-memory limit between GCs: docs/performance.md,
 * "KV-cache restore"), so the buffers are pooled and live as long as the tier.
 *
 * <p>Thread-safe. At most {@link #MAX_IDLE} buffers are kept; a reader beyond that many at once allocates one that
 * is left to the garbage collector afterwards.
 */
final class RecordReader {
    static final int MAX_IDLE = 16;

    /** A record read and checked: its key (null when it failed its check) and its payload (heap, owned). */
    record Read(BlockKey key, ByteBuffer payload) {
    }

    private final ConcurrentLinkedQueue<ByteBuffer> idle = new ConcurrentLinkedQueue<>();
    private final AtomicInteger idleCount = new AtomicInteger();

    /** The record at {@code offset} of {@code segment}, checked, its payload copied out. */
    Read read(Segment segment, long offset, int payloadBytes) throws IOException {
        ByteBuffer buf = take(segment.recordBytes);
        try {
            segment.readInto(offset, buf);
            byte[] payload = new byte[payloadBytes];
            BlockKey key = Records.verifyInto(buf, payloadBytes, payload);
            return new Read(key, ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN));
        } finally {
            give(buf);
        }
    }

    private ByteBuffer take(int bytes) {
        ByteBuffer b = idle.poll();
        if (b != null) {
            idleCount.decrementAndGet();
            if (b.capacity() >= bytes) {
                return b;
            }
        }
        return ByteBuffer.allocateDirect(bytes);
    }

    private void give(ByteBuffer b) {
        if (idleCount.incrementAndGet() <= MAX_IDLE) {
            idle.offer(b);
        } else {
            idleCount.decrementAndGet();
        }
    }

    /** Buffers kept for reuse (tests). */
    int idleBuffers() {
        return idleCount.get();
    }
}
