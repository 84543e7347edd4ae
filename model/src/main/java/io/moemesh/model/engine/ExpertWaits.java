package io.moemesh.model.engine;

/**
 * How the engine's time went around its expert calls ({@link ExpertDispatch#start} … {@link
 * ExpertDispatch.Pending#await}), summed over every MoE layer of every step: {@link #overlappedNanos()}, the time
 * the engine computed other work (another micro-batch's attention and dense layers) while a call was in flight,
 * and {@link #waitedNanos()}, the time it sat blocked in {@code await}. With ping-pong micro-batches the first
 * grows and the second shrinks: overlapped ÷ (overlapped + waited) is the share of the hop that was hidden. Written
 * by the engine's thread only; read from any thread (metrics).
 */
public final class ExpertWaits {
    private volatile long overlapped;
    private volatile long waited;
    private volatile long calls;

    /** One call: started at {@code sent} (after start returned), awaited from {@code awaiting} to {@code done}. */
    void record(long sent, long awaiting, long done) {
        // Single writer (the engine thread): the volatile read-add-write is not racy.
        overlapped += Math.max(0, awaiting - sent);
        waited += Math.max(0, done - awaiting);
        calls++;
    }

    /** Engine time spent computing something else while an expert call was in flight. */
    public long overlappedNanos() {
        return overlapped;
    }

    /** Engine time spent blocked waiting for expert results. */
    public long waitedNanos() {
        return waited;
    }

    /** Expert calls awaited (one per micro-batch per MoE layer). */
    public long calls() {
        return calls;
    }
}
