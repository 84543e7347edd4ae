package io.moemesh.service.expert;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The calls of one {@link GrpcInstanceClient} waiting for their replies, by batch id, each tagged with the stream it
 * was sent on. A stream that breaks fails only the calls sent on it: a call sent meanwhile on the stream that
 * replaced it (the transport thread failing the old stream while the engine thread already opened the new one)
 * is that stream's to answer.
 *
 * <p>The tag and the stream's failure are both volatile and written in opposite orders: the sender tags the call,
 * then checks the stream's failure; the failing side sets the failure, then fails the calls tagged with it. So a call
 * sent on a stream as it breaks is failed by one side or both, never by neither (completing it twice is a no-op).
 */
final class PendingCalls {
    /** One call: its future, its reply's shape, and the stream it was sent on (null until sent). */
    static final class Call {
        final CompletableFuture<float[]> future;
        final int rows;
        final int hidden;
        private volatile Object sentOn;

        Call(CompletableFuture<float[]> future, int rows, int hidden) {
            this.future = future;
            this.rows = rows;
            this.hidden = hidden;
        }

        /** Tags the call with the stream it is sent on; before the sender checks that stream's failure. */
        void sentOn(Object stream) {
            this.sentOn = stream;
        }
    }

    private final Map<Long, Call> calls = new ConcurrentHashMap<>();

    Call add(long batchId, CompletableFuture<float[]> future, int rows, int hidden) {
        Call c = new Call(future, rows, hidden);
        calls.put(batchId, c);
        return c;
    }

    /** The call, removed; null when it is not waiting (answered, failed, or never sent). */
    Call remove(long batchId) {
        return calls.remove(batchId);
    }

    int size() {
        return calls.size();
    }

    /** Fails every call sent on {@code stream} with {@code failure}; calls not sent yet, or sent on another, stay. */
    void failSentOn(Object stream, Throwable failure) {
        for (Call c : calls.values()) {
            if (c.sentOn == stream) {
                c.future.completeExceptionally(failure);
            }
        }
    }
}
