package io.moemesh.service.grpc;

import io.grpc.Drainable;
import io.grpc.KnownLength;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * A message stream as gRPC's framer wants it from a zero-copy marshaller: {@link Drainable} (the framer hands its
 * own output stream and the message writes itself into gRPC's buffers once) and {@link KnownLength} (the framer
 * sizes the frame without buffering it). Anything that reads instead of draining (not gRPC's framer: a test, an
 * interceptor) gets the whole message written into a byte array first, then read from there.
 */
public abstract class DrainableMessage extends InputStream implements Drainable, KnownLength {
    private final int length;
    /** Set when something reads instead of draining: the whole message, then read. */
    private ByteArrayInputStream copy;
    private boolean drained;

    /** @param length the exact number of bytes {@link #writeBody} writes */
    protected DrainableMessage(long length) {
        if (length < 0 || length > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a gRPC message holds 0 to 2^31 - 1 bytes, got " + length);
        }
        this.length = (int) length;
    }

    /** Writes the whole message, exactly the length given to the constructor. */
    protected abstract void writeBody(OutputStream target) throws IOException;

    @Override
    public final int drainTo(OutputStream target) throws IOException {
        if (drained || copy != null) {
            // Partly or fully read already: what is left.
            return (int) materialise().transferTo(target);
        }
        drained = true;
        writeBody(target);
        return length;
    }

    private ByteArrayInputStream materialise() throws IOException {
        if (copy == null) {
            ByteArrayOutputStream all = new ByteArrayOutputStream(drained ? 0 : length);
            if (!drained) {
                drainTo(all);
            }
            copy = new ByteArrayInputStream(all.toByteArray());
        }
        return copy;
    }

    @Override
    public final int available() throws IOException {
        return copy != null ? copy.available() : drained ? 0 : length;
    }

    @Override
    public final int read() throws IOException {
        return materialise().read();
    }

    @Override
    public final int read(byte[] b, int off, int len) throws IOException {
        return materialise().read(b, off, len);
    }
}
