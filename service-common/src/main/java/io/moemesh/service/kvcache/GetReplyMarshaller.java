package io.moemesh.service.kvcache;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.WireFormat;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.service.grpc.DrainableMessage;
import io.moemesh.service.grpc.WireReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;

/**
 * gRPC marshaller of {@code kvcache.v1.GetResponse} as a {@link GetReply}: the generated message's wire format (a
 * protobuf parser reads what it writes, it reads what a protobuf writer sends), without its copies of the
 * chunk's bytes. The model is the expert hop's {@code TensorMessageMarshaller}.
 *
 * <p>Writing: the stream is {@link Drainable} and {@link KnownLength}, so gRPC's framer drains it straight into
 * its (pooled, direct) buffers: the few header fields, the data's tag and length, then the chunk's bytes, from its
 * array when it has one, else through a small scratch array that stays in the core's cache (a read-only block
 * buffer has no accessible array). The generated marshaller instead serialises through protobuf's own 4 KiB
 * buffer.
 *
 * <p>Reading: one pass over the received stream (a compressed message is inflated into a heap array first, so the
 * data's length prefix is checked against the bytes present before the array is allocated:
 * {@link WireReader#knownLength}). The chunk's bytes are copied once, from gRPC's received buffers
 * where they lie ({@link HasByteBuffer}) into a heap array: a whole block's array when the chunk starts a block
 * that is {@code blockBytes} long, so a block of one chunk arrives with one copy and no other allocation (the
 * generated parser copies the message into a buffer, then into a {@code ByteString}, which the client then copies
 * into the block). A message that is not valid protobuf (a length past the end of the message, a bad wire type,
 * truncated) throws IllegalArgumentException naming what is wrong, which gRPC turns into the call's failure. The
 * received buffers stay gRPC's and are released when it closes the stream after {@code parse} returns, so nothing
 * is held past a cancel or a failure.
 */
public final class GetReplyMarshaller implements MethodDescriptor.Marshaller<GetReply> {
    /** Scratch size for read-only chunks: two HTTP/2 frames, small enough to stay in L2 while written out. */
    static final int SCRATCH_BYTES = 32 * 1024;
    private static final int INDEX = GetResponse.INDEX_FIELD_NUMBER;
    private static final int FOUND = GetResponse.FOUND_FIELD_NUMBER;
    private static final int TIER = GetResponse.TIER_FIELD_NUMBER;
    private static final int OFFSET = GetResponse.OFFSET_FIELD_NUMBER;
    private static final int DATA = GetResponse.DATA_FIELD_NUMBER;
    private static final int LAST = GetResponse.LAST_FIELD_NUMBER;

    private final int blockBytes;

    /**
     * @param blockBytes the bytes of one block of the caller's layout (a chunk at offset 0 of at most this many
     *                   bytes is read into a block-sized array); 0 on a server, which only writes
     */
    public GetReplyMarshaller(int blockBytes) {
        if (blockBytes < 0) {
            throw new IllegalArgumentException("blockBytes: must be >= 0, got " + blockBytes);
        }
        this.blockBytes = blockBytes;
    }

    @Override
    public InputStream stream(GetReply value) {
        ByteArrayOutputStream prefix = new ByteArrayOutputStream(32);
        try {
            CodedOutputStream out = CodedOutputStream.newInstance(prefix, 32);
            // Field order and default-value omission as the generated code writes them (proto3).
            if (value.index() != 0) {
                out.writeUInt32(INDEX, value.index());
            }
            if (value.found()) {
                out.writeBool(FOUND, true);
            }
            if (value.tier() != 0) {
                out.writeEnum(TIER, value.tier());
            }
            if (value.offset() != 0) {
                out.writeUInt64(OFFSET, value.offset());
            }
            if (value.length() > 0) {
                out.writeTag(DATA, WireFormat.WIRETYPE_LENGTH_DELIMITED);
                out.writeUInt32NoTag(value.length());
            }
            out.flush();
            ByteArrayOutputStream suffix = new ByteArrayOutputStream(2);
            if (value.last()) {
                CodedOutputStream s = CodedOutputStream.newInstance(suffix, 2);
                s.writeBool(LAST, true);
                s.flush();
            }
            return new Outgoing(prefix.toByteArray(), value.data().duplicate(), suffix.toByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The message as gRPC's framer wants it: drained once into its buffers. */
    private static final class Outgoing extends DrainableMessage {
        private final byte[] prefix;
        private final ByteBuffer data;
        private final byte[] suffix;

        Outgoing(byte[] prefix, ByteBuffer data, byte[] suffix) {
            super((long) prefix.length + data.remaining() + suffix.length);
            this.prefix = prefix;
            this.data = data;
            this.suffix = suffix;
        }

        @Override
        protected void writeBody(OutputStream target) throws IOException {
            target.write(prefix);
            writeData(target);
            target.write(suffix);
        }

        private void writeData(OutputStream target) throws IOException {
            ByteBuffer d = data;
            if (d.hasArray()) {
                target.write(d.array(), d.arrayOffset() + d.position(), d.remaining());
                return;
            }
            byte[] scratch = new byte[Math.min(SCRATCH_BYTES, d.remaining())];
            for (int at = d.position(); at < d.limit(); ) {
                int n = Math.min(scratch.length, d.limit() - at);
                d.get(at, scratch, 0, n);
                target.write(scratch, 0, n);
                at += n;
            }
        }
    }

    @Override
    public GetReply parse(InputStream stream) {
        try {
            return new Reading(stream).reply();
        } catch (IOException e) {
            throw new IllegalArgumentException("kvcache.v1.GetResponse: "
                    + (e.getMessage() == null ? "unreadable" : e.getMessage()), e);
        }
    }

    /** One message being read; {@code pos} counts bytes consumed. */
    private final class Reading extends WireReader {
        private int index;
        private boolean found;
        private int tier;
        private long offset;
        private boolean last;
        private ByteBuffer data;

        Reading(InputStream in) throws IOException {
            super(in);
        }

        GetReply reply() throws IOException {
            for (long tag = nextTag(); tag >= 0; tag = nextTag()) {
                int field = (int) (tag >>> 3);
                int wire = (int) (tag & 7);
                if (field == 0) {
                    throw new InvalidProtocolBufferException("field number 0 at byte " + (pos - 1));
                }
                if (wire == WireFormat.WIRETYPE_VARINT && field != DATA) {
                    long v = varint(readByte());
                    switch (field) {
                        case INDEX -> index = (int) v; // uint32: the low 32 bits, as protobuf reads it
                        case FOUND -> found = v != 0;
                        case TIER -> tier = (int) v;
                        case OFFSET -> offset = v;
                        case LAST -> last = v != 0;
                        default -> { } // an unknown field: skipped
                    }
                } else if (field == DATA && wire == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
                    data((int) length());
                } else {
                    skipValue(field, wire);
                }
            }
            return new GetReply(index, found, tier, offset, data, last);
        }

        private void data(int length) throws IOException {
            // offset 0 (absent: the default) sent before the data, the chunk no larger than a block: the block's
            // own array. A later duplicate of the field replaces the earlier one (protobuf: the last one wins).
            boolean startsBlock = blockBytes > 0 && offset == 0 && length <= blockBytes;
            byte[] into = new byte[startsBlock ? blockBytes : length];
            readInto(into, length);
            data = ByteBuffer.wrap(into, 0, length).slice();
        }

        /** {@code n} bytes into {@code a[0, n)}: from gRPC's own buffers when it offers them, else read. */
        private void readInto(byte[] a, int n) throws IOException {
            int at = 0;
            if (in instanceof HasByteBuffer hb && hb.byteBufferSupported()) {
                while (at < n) {
                    ByteBuffer b = hb.getByteBuffer();
                    if (b == null || !b.hasRemaining()) {
                        break;
                    }
                    int k = Math.min(b.remaining(), n - at);
                    b.get(b.position(), a, at, k);
                    skip(k);
                    at += k;
                }
            }
            readFully(a, at, n - at);
        }

        private void skipValue(int field, int wire) throws IOException {
            switch (wire) {
                case WireFormat.WIRETYPE_VARINT -> varint(readByte());
                case WireFormat.WIRETYPE_FIXED64 -> skip(8);
                case WireFormat.WIRETYPE_LENGTH_DELIMITED -> skip(length());
                case WireFormat.WIRETYPE_FIXED32 -> skip(4);
                default -> throw new InvalidProtocolBufferException("field " + field + ": wire type " + wire
                        + " is not supported (groups are not used by moemesh protos)");
            }
        }
    }
}
