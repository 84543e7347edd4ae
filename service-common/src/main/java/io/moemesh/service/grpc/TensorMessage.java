package io.moemesh.service.grpc;

import com.google.protobuf.Message;
import io.moemesh.proto.common.v1.DType;
import java.util.Arrays;

/**
 * A protobuf message one of whose fields is a {@code moemesh.common.v1.Tensor} of float32 values (ExpertBatch's
 * activations and outputs), kept apart from the rest: {@code header} holds every other field, the tensor is held
 * as floats. {@link TensorMessageMarshaller} writes and reads it in the message's own wire format, the tensor's
 * bytes converted straight between the float array and gRPC's buffers.
 *
 * <p>Sent: {@code values} holds product(shape) floats from index 0 (it may be longer), {@code dtype} is the wire
 * dtype (F32, or BF16 as a lossy option). Received: {@code byteLength} is the payload's length as it arrived, and
 * {@code values} is null when that length does not match shape × dtype or the dtype is not F32/BF16 (then
 * {@link TensorCodec#check} says which, naming the field); {@code tensorPresent} is false when the field was absent
 * (then dtype is unspecified and the shape empty, as the generated message's default instance).
 *
 * <p>Received values are arrays of {@link TensorArrayPool#shared()}: whoever ends up holding them may give them back
 * once done. Sent, {@code poolOwned} says the marshaller gives {@code values} back once it has written them.
 *
 * <p>In a shared-memory arena ({@link TensorArena}): {@code region} says where the bytes lie and {@code values} is
 * null; sent, the tensor field carries dtype, shape and the region instead of data; received, {@link #resolve}
 * reads the floats from the stream's arena. {@code region} is null for a tensor whose bytes travel in the message.
 *
 * @param <M> the message type; its tensor field is left unset in {@code header}
 */
public record TensorMessage<M extends Message>(M header, boolean tensorPresent, DType dtype, long[] shape,
                                               long byteLength, float[] values, TensorArena.Region region,
                                               boolean poolOwned) {

    /** A message whose values (if any) stay the caller's ({@code poolOwned} false). */
    public TensorMessage(M header, boolean tensorPresent, DType dtype, long[] shape, long byteLength, float[] values,
                         TensorArena.Region region) {
        this(header, tensorPresent, dtype, shape, byteLength, values, region, false);
    }

    /** A message to send with a [rows, cols] tensor of {@code values}. */
    public static <M extends Message> TensorMessage<M> of(M header, float[] values, int rows, int cols, DType dtype) {
        return sending(header, values, rows, cols, dtype, false);
    }

    /**
     * {@link #of}, handing {@code values} over: they are given back to {@link TensorArrayPool#shared()} once
     * written into gRPC's buffers, so the caller must not touch them after sending this message (if it is never
     * sent, they are left to the garbage collector).
     */
    public static <M extends Message> TensorMessage<M> ofPooled(M header, float[] values, int rows, int cols,
                                                                DType dtype) {
        return sending(header, values, rows, cols, dtype, true);
    }

    private static <M extends Message> TensorMessage<M> sending(M header, float[] values, int rows, int cols,
                                                                DType dtype, boolean poolOwned) {
        DType wire = dtype == DType.DTYPE_BF16 ? DType.DTYPE_BF16 : DType.DTYPE_F32;
        if (values.length < (long) rows * cols) {
            throw new IllegalArgumentException("tensor: " + values.length + " floats for [" + rows + ", " + cols + "]");
        }
        return new TensorMessage<>(header, true, wire, new long[] {rows, cols},
                (long) rows * cols * TensorCodec.elementBytes(wire), values, null, poolOwned);
    }

    /**
     * A message to send whose [rows, cols] tensor was written to {@code region} of the stream's arena as
     * {@code dtype} ({@link TensorArena#write}).
     */
    public static <M extends Message> TensorMessage<M> inArena(M header, TensorArena.Region region, int rows, int cols,
                                                               DType dtype) {
        return new TensorMessage<>(header, true, dtype, new long[] {rows, cols}, region.length(), null, region);
    }

    /** A message to send without the tensor field (an error reply). */
    public static <M extends Message> TensorMessage<M> withoutTensor(M header) {
        return new TensorMessage<>(header, false, DType.DTYPE_UNSPECIFIED, new long[0], 0, null, null);
    }

    /**
     * This message with the floats of its arena region read from {@code arena} (itself when the bytes came in the
     * message).
     *
     * @throws IllegalArgumentException naming {@code what} when there is no arena on the stream, the region is not
     *     one of its slots, or its length does not match shape × dtype
     */
    public TensorMessage<M> resolve(String what, TensorArena arena) {
        if (region == null) {
            return this;
        }
        if (arena == null) {
            throw new IllegalArgumentException(what + ": the tensor names an arena region, but this stream has no "
                    + "shared-memory arena mapped");
        }
        if (byteLength != region.length()) {
            throw new IllegalArgumentException(what + ": the tensor has both data and an arena region (one or the other)");
        }
        long n = elements();
        if (n < 0 || n > Integer.MAX_VALUE - 8 || (dtype != DType.DTYPE_F32 && dtype != DType.DTYPE_BF16)) {
            throw new IllegalArgumentException(what + ": a " + dtype + " tensor of shape " + Arrays.toString(shape)
                    + " cannot be read from an arena (F32 or BF16, at most 2^31 - 9 elements)");
        }
        try {
            return new TensorMessage<>(header, true, dtype, shape, byteLength, arena.read(region, dtype, (int) n), region);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
    }

    /** Elements the shape declares (product of the dims; 1 for a scalar); -1 when a dim is negative or it overflows. */
    public long elements() {
        return elements(shape);
    }

    static long elements(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0 || (d > 0 && n > Long.MAX_VALUE / d)) {
                return -1;
            }
            n *= d;
        }
        return n;
    }

    /** The dims as a rows count for a 2-d tensor, else -1 (as {@link TensorCodec#rows}). */
    public int rows() {
        return shape.length == 2 ? (int) Math.min(Integer.MAX_VALUE, shape[0]) : -1;
    }

    /**
     * The checked [rows, cols] floats: {@link TensorCodec#check}'s rules, then the values.
     *
     * @throws IllegalArgumentException naming {@code what} and the rule broken
     */
    public float[] floats(String what, int rows, int cols) {
        TensorCodec.check(what, dtype, shape, byteLength, rows, cols);
        if (values == null) {
            throw new IllegalArgumentException(what + (region != null ? ": the tensor lies in an arena region not read"
                    : ": unreadable payload"));
        }
        return values;
    }

    @Override
    public String toString() {
        return header.getDescriptorForType().getName() + "{tensor " + dtype + Arrays.toString(shape) + ", "
                + byteLength + " bytes" + (region == null ? "" : " in arena at " + region.offset()) + "}";
    }
}
