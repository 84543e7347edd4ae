package io.moemesh.service.grpc;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The scratch chunks tensors are converted through on the per-layer hop: a float32 row block is converted
 * (float32 → little-endian bytes, or → bf16) into a chunk that stays in the core's cache and is written from
 * there straight into gRPC's pooled direct Netty buffers, and a received payload is read from Netty's buffers
 * through the same chunks into the float32 array. No message-sized byte[] is ever allocated on the hop.
 *
 * <p>One pool per process ({@link #shared()}): a chunk is taken for the duration of one conversion and given
 * back in a {@code finally}, so {@link #bytesInUse()} returns to 0 whatever happens to the call (the
 * {@code moemesh_hop_buffer_pool_bytes_in_use} gauge shows a leak as a value that never returns to 0). At most
 * {@link #MAX_IDLE} chunks are kept idle; more are left to the garbage collector.
 */
public final class HopBufferPool {
    /** Bytes per chunk: two HTTP/2 frames' worth, small enough to stay in L2 while it is written out. */
    public static final int CHUNK_BYTES = 32 * 1024;
    static final int MAX_IDLE = 64;
    private static final HopBufferPool SHARED = new HopBufferPool();

    /** One conversion's scratch bytes, and the bf16 values staged for them ({@link Bf16Vectors#encode}). */
    public static final class Chunk {
        /** Floats one {@link #bf16} call converts at most. */
        static final int BF16_PER_CHUNK = CHUNK_BYTES / 2;
        private static final ValueLayout.OfShort BF16 =
                ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        final byte[] bytes = new byte[CHUNK_BYTES];
        private final short[] shorts = new short[BF16_PER_CHUNK];

        /**
         * Writes {@code k} (≤ {@link #BF16_PER_CHUNK}) floats of {@code src} from {@code off} as little-endian bf16
         * to {@code dst} at byte {@code at}: rounded with vectors into this chunk's shorts, then one bulk copy. The
         * shorts are the staging because storing short vectors straight into a byte array or a byte segment is not
         * intrinsified by this JDK ({@link Bf16Vectors} says why).
         */
        void bf16(float[] src, int off, MemorySegment dst, long at, int k) {
            Bf16Vectors.encode(src, off, shorts, 0, k);
            MemorySegment.copy(shorts, 0, dst, BF16, at, k);
        }
    }

    private final ConcurrentLinkedQueue<Chunk> idle = new ConcurrentLinkedQueue<>();
    private final AtomicInteger idleCount = new AtomicInteger();
    private final AtomicLong outstanding = new AtomicLong();

    HopBufferPool() {
    }

    public static HopBufferPool shared() {
        return SHARED;
    }

    Chunk take() {
        outstanding.incrementAndGet();
        Chunk c = idle.poll();
        if (c != null) {
            idleCount.decrementAndGet();
            return c;
        }
        return new Chunk();
    }

    void give(Chunk c) {
        outstanding.decrementAndGet();
        if (idleCount.incrementAndGet() <= MAX_IDLE) {
            idle.offer(c);
        } else {
            idleCount.decrementAndGet();
        }
    }

    /** Chunks taken and not given back. */
    public long outstanding() {
        return outstanding.get();
    }

    /** Bytes of the chunks taken and not given back (the gauge): each holds its bytes and its bf16 staging. */
    public long bytesInUse() {
        return outstanding.get() * 2 * CHUNK_BYTES;
    }
}
