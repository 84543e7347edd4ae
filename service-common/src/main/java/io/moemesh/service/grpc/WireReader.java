package io.moemesh.service.grpc;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.KnownLength;
import java.io.IOException;
import java.io.InputStream;

/**
 * The protobuf wire format's primitives (varints, length prefixes, skipping) read from a gRPC message stream, for the
 * hand-written parsers that read large byte fields straight from gRPC's buffers ({@link TensorMessageMarshaller},
 * the kvcache {@code GetReplyMarshaller}). Encoding: https://protobuf.dev/programming-guides/encoding/. Every error
 * is an {@link InvalidProtocolBufferException} naming the byte it happened at, as protobuf's own parser does, so a
 * bad message fails its call as INVALID_ARGUMENT / INTERNAL the same way whichever parser read it.
 */
public abstract class WireReader {
    /** The message being read: {@link KnownLength}, its {@code available()} the bytes left. */
    protected final InputStream in;
    /** Bytes of {@link #in} consumed so far. */
    protected long pos;

    /** @throws IOException when the message cannot be read (a compressed body that does not inflate) */
    protected WireReader(InputStream in) throws IOException {
        this.in = knownLength(in);
    }

    /**
     * The message as a stream that knows how many of its bytes are left, so every length prefix is checked against
     * the bytes actually present before anything is allocated for it. gRPC hands an uncompressed message over as
     * such a stream (its received buffers, read in place); a compressed one ({@code grpc-encoding: gzip}) comes as
     * an inflating stream that knows no length, so it is inflated whole into a heap array first: no more than the
     * server's or channel's inbound message limit, which that stream enforces as it is read. Trusting the prefix
     * instead let a 30-byte gzip message claim a 2 GiB field and have it allocated before one byte of it was read.
     */
    public static InputStream knownLength(InputStream in) throws IOException {
        return in instanceof KnownLength ? in : new HeapMessageStream(in.readAllBytes());
    }

    /** The next field's tag, or -1 at the end of the message (which may only end between fields). */
    protected final long nextTag() throws IOException {
        int first = in.read();
        if (first < 0) {
            return -1;
        }
        pos++;
        long tag = varint(first);
        if (tag < 0) {
            throw new InvalidProtocolBufferException("malformed tag at byte " + pos);
        }
        return tag;
    }

    /** A length prefix, checked against what is left of the message (so nothing is allocated for bytes not sent). */
    protected final long length() throws IOException {
        long n = varint(readByte());
        if (n < 0 || n > Integer.MAX_VALUE || n > in.available()) {
            throw new InvalidProtocolBufferException("a length of " + n + " at byte " + pos
                    + " runs past the end of the message (truncated message)");
        }
        return n;
    }

    protected final int readByte() throws IOException {
        int b = in.read();
        if (b < 0) {
            throw truncated();
        }
        pos++;
        return b;
    }

    /** The rest of a varint whose first byte is {@code first} (at most 10 bytes). */
    protected final long varint(int first) throws IOException {
        long v = first & 0x7f;
        int b = first;
        for (int shift = 7; (b & 0x80) != 0; shift += 7) {
            if (shift > 63) {
                throw new InvalidProtocolBufferException("malformed varint at byte " + pos);
            }
            b = readByte();
            v |= (long) (b & 0x7f) << shift;
        }
        return v;
    }

    /** {@code n} bytes into {@code b[at, at + n)}, all of them or the message is truncated. */
    protected final void readFully(byte[] b, int at, int n) throws IOException {
        int got = in.readNBytes(b, at, n);
        pos += got;
        if (got < n) {
            throw truncated();
        }
    }

    protected final void skip(long n) throws IOException {
        long left = n;
        while (left > 0) {
            long k = in.skip(left);
            if (k <= 0) {
                if (in.read() < 0) {
                    throw truncated();
                }
                k = 1;
            }
            left -= k;
            pos += k;
        }
    }

    protected final InvalidProtocolBufferException truncated() {
        return new InvalidProtocolBufferException("the message ends in the middle of a field at byte " + pos
                + " (truncated message)");
    }
}
