package io.moemesh.service.grpc;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.moemesh.proto.common.v1.ArenaRegion;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * gRPC marshaller of a {@link TensorMessage}: the same bytes as the generated message (any protobuf parser reads
 * what it writes, and it reads what any protobuf writer sends), without the payload copies of the generated
 * marshaller.
 *
 * <p>Writing: the stream is {@link Drainable} and {@link KnownLength}, so gRPC's framer hands it its output stream,
 * which writes into pooled direct Netty buffers; the header fields are written as the generated code serialises
 * them, then the tensor field (tag, length, dtype and shape, data tag and length) with
 * {@link CodedOutputStream}, then the floats converted chunk by chunk ({@link TensorCodec#write}). Fields need
 * not be in number order on the wire (protobuf encoding spec, "Field Order"), so the tensor goes last.
 *
 * <p>Reading: one pass over the received stream (a compressed message is inflated into a heap array first, so that
 * every length prefix is checked against the bytes present before anything is allocated for it:
 * {@link WireReader#knownLength}). Fields other than the tensor are copied (a few hundred bytes) and
 * parsed by the generated parser; the tensor's data is decoded from gRPC's received buffers where they lie
 * ({@link HasByteBuffer}) into a float array of the declared shape, once its byte length is checked against shape
 * × dtype (a mismatch, or dtype/shape arriving after the data, is read without decoding: the bytes are skipped,
 * and {@link TensorMessage#floats} reports the mismatch for that message alone). A message that is not valid
 * protobuf (truncated, a length past its end, a bad wire type) throws IllegalArgumentException naming what is
 * wrong. Pool chunks are given back on every path; the received buffers stay gRPC's, released when it closes
 * the stream after {@code parse} returns.
 */
public final class TensorMessageMarshaller<M extends Message> implements MethodDescriptor.Marshaller<TensorMessage<M>> {
    private static final int DATA = Tensor.DATA_FIELD_NUMBER;
    private final M prototype;
    private final int tensorField;

    /**
     * @param prototype the message's default instance (its parser reads the other fields)
     * @param tensorField the number of the message's {@code Tensor} field
     */
    public TensorMessageMarshaller(M prototype, int tensorField) {
        this.prototype = prototype;
        this.tensorField = tensorField;
    }

    /** The message type's full name, for error messages. */
    public String typeName() {
        return prototype.getDescriptorForType().getFullName();
    }

    @Override
    public InputStream stream(TensorMessage<M> value) {
        ByteArrayOutputStream prefix = new ByteArrayOutputStream(256);
        try {
            value.header().writeTo(prefix);
            if (value.tensorPresent()) {
                Tensor.Builder t = Tensor.newBuilder().setDtype(value.dtype());
                for (long d : value.shape()) {
                    t.addShape(d);
                }
                TensorArena.Region r = value.region();
                if (r != null) {
                    t.setRegion(ArenaRegion.newBuilder().setOffsetBytes(r.offset()).setLengthBytes(r.length())
                            .setCapacityBytes(r.capacity()));
                }
                byte[] tensorHead = t.build().toByteArray();
                long data = r != null ? 0 : value.byteLength();
                long tensorLength = tensorHead.length + (r != null ? 0 : CodedOutputStream.computeTagSize(DATA)
                        + CodedOutputStream.computeUInt64SizeNoTag(data) + data);
                if (tensorLength > Integer.MAX_VALUE - 1024) {
                    throw new IllegalArgumentException("tensor: " + data + " bytes are too many for one message");
                }
                CodedOutputStream out = CodedOutputStream.newInstance(prefix, 64);
                out.writeTag(tensorField, 2);
                out.writeUInt64NoTag(tensorLength);
                out.writeRawBytes(tensorHead);
                if (r == null) {
                    out.writeTag(DATA, 2);
                    out.writeUInt64NoTag(data);
                }
                out.flush();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return new Outgoing(prefix.toByteArray(), value);
    }

    /** The message as gRPC's framer wants it: drained once into its buffers. */
    private static final class Outgoing extends DrainableMessage {
        private final byte[] prefix;
        private final TensorMessage<?> value;

        Outgoing(byte[] prefix, TensorMessage<?> value) {
            super(prefix.length + (value.tensorPresent() && value.region() == null ? value.byteLength() : 0));
            this.prefix = prefix;
            this.value = value;
        }

        @Override
        protected void writeBody(OutputStream target) throws IOException {
            target.write(prefix);
            if (value.tensorPresent() && value.region() == null) {
                TensorCodec.write(value.values(), 0, (int) value.elements(), value.dtype(), target);
                if (value.poolOwned()) {
                    // Written into gRPC's buffers: the sender handed the array over (TensorMessage.ofPooled).
                    TensorArrayPool.shared().give(value.values());
                }
            }
        }
    }

    @Override
    public TensorMessage<M> parse(InputStream stream) {
        try {
            return new Reading(stream).message();
        } catch (IOException e) {
            throw new IllegalArgumentException(e.getMessage() == null ? "unreadable" : e.getMessage(), e);
        }
    }

    /** One message being read; {@code pos} counts bytes consumed from the stream. */
    private final class Reading extends WireReader {
        private boolean present;
        private int dtype;
        private final List<Long> shape = new ArrayList<>();
        private long byteLength;
        private float[] values;
        private int decodedDtype = -1;
        private long decodedElements = -1;
        /** Data that arrived before its dtype or shape, decoded at the end. */
        private byte[] raw;
        private boolean sawData;
        private TensorArena.Region region;

        Reading(InputStream in) throws IOException {
            super(in);
        }

        TensorMessage<M> message() throws IOException {
            ByteArrayOutputStream header = new ByteArrayOutputStream(256);
            CodedOutputStream hout = CodedOutputStream.newInstance(header, 256);
            for (long tag = nextTag(); tag >= 0; tag = nextTag()) {
                int field = (int) (tag >>> 3);
                int wire = (int) (tag & 7);
                if (field == tensorField && wire == 2) {
                    tensor(length());
                    continue;
                }
                hout.writeUInt64NoTag(tag);
                copyValue(field, wire, hout);
            }
            hout.flush();
            @SuppressWarnings("unchecked")
            M head = (M) prototype.getParserForType().parseFrom(header.toByteArray());
            return finish(head);
        }

        private TensorMessage<M> finish(M head) {
            if (!present) {
                return new TensorMessage<>(head, false, DType.DTYPE_UNSPECIFIED, new long[0], 0, null, null);
            }
            DType dt = DType.forNumber(dtype) == null ? DType.UNRECOGNIZED : DType.forNumber(dtype);
            long[] dims = shape.stream().mapToLong(Long::longValue).toArray();
            if (region != null) {
                // The bytes are in the stream's arena (TensorMessage.resolve); data as well is a contradiction
                // that resolve() reports for this message alone.
                return new TensorMessage<>(head, true, dt, dims, sawData ? -1 : region.length(), null, region);
            }
            long elements = consistent(dims, byteLength);
            float[] out = null;
            if (elements >= 0) {
                if (values != null && decodedDtype == dtype && decodedElements == elements) {
                    out = values;
                } else if (raw != null) {
                    out = new float[(int) elements];
                    new TensorCodec.TensorReader(dt, (int) elements, out, 0).accept(ByteBuffer.wrap(raw));
                }
            }
            return new TensorMessage<>(head, true, dt, dims, byteLength, out, null);
        }

        /** Elements when dtype is F32/BF16 and shape × element size = bytes (≤ 2^31 − 1 floats), else -1. */
        private long consistent(long[] dims, long bytes) {
            if (dtype != DType.DTYPE_F32_VALUE && dtype != DType.DTYPE_BF16_VALUE) {
                return -1;
            }
            long n = TensorMessage.elements(dims);
            int size = dtype == DType.DTYPE_BF16_VALUE ? 2 : 4;
            return n < 0 || n > Integer.MAX_VALUE - 8 || n * size != bytes ? -1 : n;
        }

        private void tensor(long length) throws IOException {
            present = true;
            long end = pos + length;
            while (pos < end) {
                int first = readByte();
                long tag = varint(first);
                int field = (int) (tag >>> 3);
                int wire = (int) (tag & 7);
                if (field == Tensor.DTYPE_FIELD_NUMBER && wire == 0) {
                    dtype = (int) varint(readByte());
                } else if (field == Tensor.SHAPE_FIELD_NUMBER && wire == 0) {
                    shape.add(varint(readByte()));
                } else if (field == Tensor.SHAPE_FIELD_NUMBER && wire == 2) {
                    long packed = length();
                    long packedEnd = pos + packed;
                    while (pos < packedEnd) {
                        shape.add(varint(readByte()));
                    }
                    if (pos != packedEnd) {
                        throw new InvalidProtocolBufferException("tensor shape: packed varints run past their length");
                    }
                } else if (field == DATA && wire == 2) {
                    sawData = true;
                    data(length(), end);
                } else if (field == Tensor.REGION_FIELD_NUMBER && wire == 2) {
                    region(length(), end);
                } else {
                    copyValue(field, wire, CodedOutputStream.newInstance(OutputStream.nullOutputStream()));
                }
                if (pos > end) {
                    throw new InvalidProtocolBufferException("tensor: a field runs past the tensor's length");
                }
            }
        }

        /** An ArenaRegion: three varints (unknown fields skipped); the last occurrence wins, as protobuf merges. */
        private void region(long length, long tensorEnd) throws IOException {
            long end = pos + length;
            if (end > tensorEnd) {
                throw new InvalidProtocolBufferException("tensor region: " + length + " bytes run past the tensor's end");
            }
            long offset = 0;
            long bytes = 0;
            long capacity = 0;
            while (pos < end) {
                long tag = varint(readByte());
                int field = (int) (tag >>> 3);
                int wire = (int) (tag & 7);
                if (wire == 0 && field >= ArenaRegion.OFFSET_BYTES_FIELD_NUMBER
                        && field <= ArenaRegion.CAPACITY_BYTES_FIELD_NUMBER) {
                    long v = varint(readByte());
                    switch (field) {
                        case ArenaRegion.OFFSET_BYTES_FIELD_NUMBER -> offset = v;
                        case ArenaRegion.LENGTH_BYTES_FIELD_NUMBER -> bytes = v;
                        default -> capacity = v;
                    }
                } else {
                    copyValue(field, wire, CodedOutputStream.newInstance(OutputStream.nullOutputStream()));
                }
            }
            if (pos != end) {
                throw new InvalidProtocolBufferException("tensor region: a field runs past the region's length");
            }
            region = new TensorArena.Region(offset, bytes, capacity);
        }

        private void data(long length, long tensorEnd) throws IOException {
            if (pos + length > tensorEnd) {
                throw new InvalidProtocolBufferException("tensor data: " + length + " bytes run past the tensor's end");
            }
            byteLength = length;
            values = null;
            raw = null;
            long[] dims = shape.stream().mapToLong(Long::longValue).toArray();
            long elements = consistent(dims, length);
            if (elements >= 0) {
                values = TensorArrayPool.shared().take((int) elements);
                decodedDtype = dtype;
                decodedElements = elements;
                DType dt = DType.forNumber(dtype);
                pieces(length, new TensorCodec.TensorReader(dt, (int) elements, values, 0));
            } else {
                // dtype or shape may still come (fields in any order), or they do not match and finish() says so:
                // keep the bytes (no more than are left of the message: length() checked them).
                raw = new byte[(int) length];
                readFully(raw, 0, raw.length);
            }
        }

        /** Feeds {@code length} bytes to the reader: gRPC's own buffers when it offers them, else through a chunk. */
        private void pieces(long length, TensorCodec.TensorReader r) throws IOException {
            long left = length;
            if (in instanceof HasByteBuffer hb && hb.byteBufferSupported()) {
                while (left > 0) {
                    ByteBuffer b = hb.getByteBuffer();
                    if (b == null || !b.hasRemaining()) {
                        break;
                    }
                    int k = (int) Math.min(b.remaining(), left);
                    ByteBuffer piece = b.duplicate();
                    piece.limit(piece.position() + k);
                    r.accept(piece);
                    skip(k);
                    left -= k;
                }
            }
            if (left > 0) {
                HopBufferPool.Chunk c = HopBufferPool.shared().take();
                try {
                    byte[] buf = c.bytes;
                    while (left > 0) {
                        int got = in.read(buf, 0, (int) Math.min(buf.length, left));
                        if (got < 0) {
                            throw truncated();
                        }
                        pos += got;
                        left -= got;
                        r.accept(ByteBuffer.wrap(buf, 0, got));
                    }
                } finally {
                    HopBufferPool.shared().give(c);
                }
            }
        }

        private void copyValue(int field, int wire, CodedOutputStream out) throws IOException {
            if (field == 0) {
                throw new InvalidProtocolBufferException("field number 0 at byte " + pos);
            }
            switch (wire) {
                case 0 -> out.writeUInt64NoTag(varint(readByte()));
                case 1 -> copyBytes(8, out);
                case 2 -> {
                    long n = length();
                    out.writeUInt32NoTag((int) n);
                    copyBytes(n, out);
                }
                case 5 -> copyBytes(4, out);
                default -> throw new InvalidProtocolBufferException("field " + field + ": wire type " + wire
                        + " is not supported (groups are not used by moemesh protos)");
            }
        }

        private void copyBytes(long n, CodedOutputStream out) throws IOException {
            byte[] b = new byte[(int) n];
            readFully(b, 0, b.length);
            out.writeRawBytes(b);
        }
    }
}
