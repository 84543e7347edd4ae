package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockContents;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;

/** A block queued in the {@link WriteBack} (all its state is guarded as the write-back says). */
final class QueuedBlock {
    final BlockContents block;
    /** Queued by {@link WriteBack#writeFirst} (counted against priorityBlocks), else by {@link WriteBack#accept}. */
    final boolean priority;
    final CompletableFuture<Boolean> done = new CompletableFuture<>();
    /** writeFirst calls waiting for it (under {@code known}'s lock): {@link WriteBack#withdraw} takes it only from the last. */
    int waiters;
    /**
     * Its Put says {@code pin_next} (an offload pins it next): set by {@link WriteBack#writeFirst} under {@code known}'s
     * lock, possibly after the block was queued by {@link WriteBack#accept}; read by the writer when it sends the block.
     */
    volatile boolean pinNext;
    /** Its Put says {@code swap_out} (a swap-out reads it back on resume): set and read as {@link #pinNext}. */
    volatile boolean swapOut;
    /**
     * Why its Put went unanswered (transport error, deadline), else null: set before {@link #done} completes, so
     * an offload waiting for it fails once with it, however many Puts its blocks took (see writeFirstStored). A
     * holder of its own so that the offload keeps only it, never the entry and its block's arrays.
     */
    final AtomicReference<RuntimeException> unanswered = new AtomicReference<>();

    QueuedBlock(BlockContents block, boolean priority, boolean pinNext) {
        this.block = block;
        this.priority = priority;
        this.pinNext = pinNext;
        this.swapOut = priority && !pinNext;
    }
}
