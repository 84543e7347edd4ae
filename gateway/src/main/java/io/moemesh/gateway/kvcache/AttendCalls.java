package io.moemesh.gateway.kvcache;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.moemesh.model.engine.RemoteAttentionBatch;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The {@link AttendOffload}'s {@code Attend} calls of one layer, on the engine thread: in {@link #start}, one
 * asynchronous call per sequence of the batch (a sequence's rows are consecutive; more than {@link
 * AttendOffload#MAX_ROWS} rows, a prefill chunk, go in several), each with a deadline of {@code timeout}; {@link
 * #await} waits for all of them and copies the answers into the batch. Every call is waited for: those that failed or
 * missed the deadline are reported together, naming their sequences ({@link RemoteAttentionException#sequences}), so
 * the scheduler ends those alone and steps the others again.
 */
final class AttendCalls {
    private final KvCacheClient client;
    private final Duration timeout;
    /** The calls of the current layer. */
    private final List<Call> calls = new ArrayList<>();
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final AtomicLong wireBytes = new AtomicLong();

    /** One Attend in flight: batch rows [from, from + rows). */
    private record Call(int from, int rows, long seqId, int requestBytes, ListenableFuture<AttendResponse> answer) {
    }

    /** The hashes of a sequence's remote prefix, as pinned for it. */
    interface Chains {
        List<ByteString> of(long seqId, int prefixPositions);
    }

    AttendCalls(KvCacheClient client, Duration timeout) {
        this.client = client;
        this.timeout = timeout;
    }

    /**
     * Sends the batch's calls. A sequence whose call cannot even be made (no pins for its remote prefix) fails alone:
     * its calls so far are cancelled and the failure names it.
     */
    void start(RemoteAttentionBatch batch, Chains chains) {
        cancel();
        int rowFloats = batch.heads() * batch.headDim();
        for (int i = 0; i < batch.count(); ) {
            long seq = batch.seqId(i);
            int n = 1;
            while (i + n < batch.count() && n < AttendOffload.MAX_ROWS && batch.seqId(i + n) == seq) {
                n++;
            }
            AttendRequest req;
            try {
                List<ByteString> blocks = chains.of(seq, batch.prefix(i));
                ByteBuffer q = ByteBuffer.allocate(n * rowFloats * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                q.asFloatBuffer().put(batch.queries(), i * rowFloats, n * rowFloats);
                long[] positions = new long[n];
                for (int j = 0; j < n; j++) {
                    positions[j] = batch.position(i + j);
                }
                req = client.attendRequest(batch.layer(), n, batch.heads(),
                        UnsafeByteOperations.unsafeWrap(q.array()), positions, blocks, batch.scale());
            } catch (RuntimeException e) {
                cancel();
                throw new RemoteAttentionException(e.getMessage(), e, Set.of(seq));
            }
            calls.add(new Call(i, n, seq, req.getSerializedSize(), client.attend(req, timeout)));
            sent.incrementAndGet();
            i += n;
        }
    }

    /**
     * Waits for every call (one deadline for the layer) and copies the answers into the batch; then, when any failed
     * or missed the deadline, throws naming their sequences (counted once per layer).
     */
    void await(RemoteAttentionBatch batch) {
        long deadline = System.nanoTime() + timeout.toNanos();
        TreeMap<Long, String> failed = new TreeMap<>();
        try {
            for (Call c : calls) {
                if (failed.containsKey(c.seqId())) {
                    continue;
                }
                try {
                    AttendResponse a = answer(c, deadline);
                    copy(batch, c, a);
                    wireBytes.addAndGet(c.requestBytes() + a.getSerializedSize());
                } catch (IllegalStateException e) {
                    failed.put(c.seqId(), e.getMessage());
                }
            }
        } finally {
            cancel();
        }
        if (!failed.isEmpty()) {
            failures.incrementAndGet();
            throw new RemoteAttentionException(String.join("; ", failed.values()), null, failed.keySet());
        }
    }

    private AttendResponse answer(Call c, long deadline) {
        try {
            return c.answer().get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Status s = Status.fromThrowable(e.getCause());
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " at the kvcache-service "
                    + client.endpoint() + " failed: " + s.getCode()
                    + (s.getDescription() == null ? "" : " " + s.getDescription()));
        } catch (TimeoutException e) {
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " at the kvcache-service "
                    + client.endpoint() + " did not answer within " + timeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for Attend of sequence " + c.seqId());
        }
    }

    /** Checks the answer's shapes and copies it into the batch's rows. */
    private static void copy(RemoteAttentionBatch batch, Call c, AttendResponse a) {
        int heads = batch.heads();
        int d = batch.headDim();
        Tensor out = a.getOutputs();
        Tensor lse = a.getLse();
        if (out.getDtype() != DType.DTYPE_F32 || out.getData().size() != c.rows() * heads * d * Float.BYTES
                || lse.getDtype() != DType.DTYPE_F32 || lse.getData().size() != c.rows() * heads * Float.BYTES) {
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " answered " + out.getShapeList()
                    + " outputs and " + lse.getShapeList() + " lse for " + c.rows() + " rows of " + heads + " heads");
        }
        FloatBuffer o = out.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        o.get(batch.output(), c.from() * heads * d, c.rows() * heads * d);
        FloatBuffer l = lse.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        l.get(batch.lse(), c.from() * heads, c.rows() * heads);
    }

    private void cancel() {
        for (Call c : calls) {
            c.answer().cancel(true);
        }
        calls.clear();
    }

    /** Attend calls sent. */
    long sent() {
        return sent.get();
    }

    /** Layers whose Attend failed or timed out for some sequence (each failed those sequences' step). */
    long failures() {
        return failures.get();
    }

    /** Serialized bytes of answered Attend calls, request plus response (protobuf messages, no HTTP/2 framing). */
    long wireBytes() {
        return wireBytes.get();
    }
}
