package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.IntakeLimiter;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A /v1 request's body once it has arrived whole and within the limits ({@link BodyBuffer}), handed to the handler
 * as the request's input stream: the handler parses bytes that are already here, so it never waits for a client.
 * It holds the body's large-request permit and its share of {@link HeldBodyBytes} until {@link #close()}, after the
 * handler parsed and tokenized the request (closing twice releases once), and lets go of the bytes then: a read
 * after it fails.
 */
final class ReceivedBody implements AutoCloseable {
    /**
     * Null once closed: the container keeps the request (and this wrapper) until its response ends, which for a
     * stream is long after parsing, and that many bodies must not stay on the heap unseen by {@link HeldBodyBytes}.
     */
    private volatile byte[] bytes;
    private final int length;
    private final IntakeLimiter.Permit permit;
    private final HeldBodyBytes held;
    private final AtomicBoolean closed = new AtomicBoolean();

    ReceivedBody(byte[] bytes, int length, IntakeLimiter.Permit permit, HeldBodyBytes held) {
        this.bytes = bytes;
        this.length = length;
        this.permit = permit;
        this.held = held;
    }

    int length() {
        return length;
    }

    /** {@code request} reading this body. */
    HttpServletRequest wrap(HttpServletRequest request) {
        return new HttpServletRequestWrapper(request) {
            private ServletInputStream stream;

            @Override
            public ServletInputStream getInputStream() {
                if (stream == null) {
                    stream = new Stream();
                }
                return stream;
            }

            @Override
            public BufferedReader getReader() {
                String cs = getCharacterEncoding();
                return new BufferedReader(new InputStreamReader(getInputStream(),
                        cs == null ? StandardCharsets.UTF_8 : Charset.forName(cs)));
            }
        };
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            bytes = null;
            permit.close();
            held.release(length);
        }
    }

    /** The body's bytes; a read after {@link #close()} (its handler parsed it already) is a bug, not an empty body. */
    private byte[] bytes() throws IOException {
        byte[] b = bytes;
        if (b == null) {
            throw new IOException("the request body was given back after it was parsed; it can be read only before");
        }
        return b;
    }

    private final class Stream extends ServletInputStream {
        private int at;

        @Override
        public int read() throws IOException {
            byte[] b = bytes();
            return at < length ? b[at++] & 0xff : -1;
        }

        @Override
        public int read(byte[] buf, int off, int len) throws IOException {
            byte[] b = bytes();
            if (len == 0) {
                return 0;
            }
            if (at >= length) {
                return -1;
            }
            int n = Math.min(len, length - at);
            System.arraycopy(b, at, buf, off, n);
            at += n;
            return n;
        }

        @Override
        public int available() {
            return length - at;
        }

        @Override
        public boolean isFinished() {
            return at >= length;
        }

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setReadListener(ReadListener listener) {
            // The body is here already: nothing to wait for, and no handler of the gateway reads asynchronously.
            throw new IllegalStateException("the request body has been read already; read it blocking");
        }
    }
}
