package io.moemesh.service.expert;

import io.grpc.ClientCall;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.Status;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.service.grpc.TensorArena;
import io.moemesh.service.grpc.TensorCodec;
import io.moemesh.service.grpc.TensorMessage;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The client's side of one ExpertBatch stream's shared-memory arena ({@link TensorArena}): offered in the call's
 * headers, used once the instance's response headers say it mapped it, and the slot of each call in flight, which
 * goes back only when that call's reply arrived (the instance may write to it until it replies). The arena lives and
 * dies with its stream.
 */
final class StreamArena {
    private static final Logger log = LoggerFactory.getLogger(StreamArena.class);

    private final String id;
    private final TensorArena arena;
    private volatile boolean mapped;
    /** batch_id → the slot its message and reply use, until the reply arrives. */
    private final Map<Long, Integer> slots = new ConcurrentHashMap<>();

    private StreamArena(String id, TensorArena arena) {
        this.id = id;
        this.arena = arena;
    }

    /** A new arena for a stream to {@code id}, or empty (logged) when none can be made: tensors in the messages. */
    static Optional<StreamArena> create(String id, SharedMemory settings) {
        try {
            return Optional.of(new StreamArena(id, TensorArena.create(settings.dir(), settings.slots(),
                    settings.slotBytes())));
        } catch (RuntimeException e) {
            log.warn("{}: no shared-memory arena for the ExpertBatch stream ({}); tensors travel in the messages", id,
                    e.getMessage());
            return Optional.empty();
        }
    }

    /** The call with the arena's path in its headers, reading the instance's answer from the response headers. */
    ClientCall<TensorMessage<ExpertBatchRequest>, TensorMessage<ExpertBatchResponse>> offeredOn(
            ClientCall<TensorMessage<ExpertBatchRequest>, TensorMessage<ExpertBatchResponse>> call) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
            @Override
            public void start(Listener<TensorMessage<ExpertBatchResponse>> listener, Metadata headers) {
                headers.put(ExpertBatchWire.ARENA_HEADER, arena.path().toString());
                super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                    @Override
                    public void onHeaders(Metadata h) {
                        String answer = h.get(ExpertBatchWire.ARENA_HEADER);
                        // Mapped or refused, the instance has done with the file: both ends keep their mappings.
                        arena.unlink();
                        if (ExpertBatchWire.ARENA_MAPPED.equals(answer)) {
                            mapped = true;
                        } else {
                            log.info("{}: the instance did not map the shared-memory arena ({}); tensors travel in the "
                                    + "messages", id, answer == null ? "no answer" : answer);
                        }
                        super.onHeaders(h);
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        arena.unlink();
                        super.onClose(status, trailers);
                    }
                }, headers);
            }
        };
    }

    /**
     * Writes call {@code batchId}'s [rows, hidden] activations into a free slot as {@code dtype} and returns its
     * region; empty (nothing written) when the instance has not mapped the arena yet, every slot is taken, or the
     * call's float32 outputs would not fit a slot.
     */
    Optional<TensorArena.Region> write(long batchId, float[] activations, int rows, int hidden, DType dtype) {
        if (!mapped || (long) rows * hidden * TensorCodec.elementBytes(DType.DTYPE_F32) > arena.slotBytes()) {
            return Optional.empty();
        }
        OptionalInt slot = arena.take();
        if (slot.isEmpty()) {
            return Optional.empty();
        }
        slots.put(batchId, slot.getAsInt());
        try {
            return Optional.of(arena.write(slot.getAsInt(), activations, rows * hidden, dtype));
        } catch (RuntimeException e) {
            release(batchId);
            throw e;
        }
    }

    /** Gives back the slot of {@code batchId}, if it has one. */
    void release(long batchId) {
        Integer slot = slots.remove(batchId);
        if (slot != null) {
            arena.give(slot);
        }
    }

    /**
     * The reply to {@code batchId} with its outputs read from the arena when it names a region (which must be its
     * request's slot), and the slot given back in every case.
     *
     * @param read false when nobody waits for the reply any more: only the slot is given back
     * @throws IllegalArgumentException when the region is not the request's slot or does not match the shape
     */
    TensorMessage<ExpertBatchResponse> reply(long batchId, TensorMessage<ExpertBatchResponse> reply, boolean read) {
        try {
            if (reply.region() == null) {
                return reply;
            }
            Integer slot = slots.get(batchId);
            if (slot == null || arena.slotOf(reply.region()) != slot) {
                throw new IllegalArgumentException("the reply names arena offset "
                        + Long.toUnsignedString(reply.region().offset()) + ", not its request's slot");
            }
            return read ? reply.resolve(id + " outputs", arena) : reply;
        } finally {
            release(batchId);
        }
    }

    /** Slots held by calls whose reply has not arrived. */
    int slotsInUse() {
        return arena.slotsInUse();
    }
}
