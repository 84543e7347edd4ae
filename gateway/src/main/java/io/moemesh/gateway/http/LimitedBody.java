package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.IntakeLimiter;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * The body of a /v1 request as the handler reads it, counted byte by byte, so the limits hold also when there is
 * no Content-Length (chunked transfer): past {@code maxBytes} the read fails with 413; a declared large length, or
 * a count past the intake limiter's large threshold, needs a large-request permit (429 when none is free) before
 * the next byte is handed out: so only a handler that reads the body takes one, after its own checks (the tenant's
 * rate). The permit is held until {@link #close()}, after the handler parsed and tokenized the request.
 */
final class LimitedBody extends HttpServletRequestWrapper implements AutoCloseable {
    private final long maxBytes;
    private final IntakeLimiter intake;
    /** The Content-Length the client declared, or -1. */
    private final long declared;
    private IntakeLimiter.Permit permit;
    private ServletInputStream stream;
    private long read;
    private boolean eof;

    /** @param declared the request's Content-Length, or -1 when it has none */
    LimitedBody(HttpServletRequest request, long maxBytes, IntakeLimiter intake, long declared) {
        super(request);
        this.maxBytes = maxBytes;
        this.intake = intake;
        this.declared = declared;
    }

    /** Before a read: a body declared large needs its permit before its first byte is taken in. */
    private void beforeRead() {
        if (permit == null && intake.isLarge(declared)) {
            permit = intake.admit(declared);
        }
    }

    /** Whether the handler read the body to its end. */
    boolean fullyRead() {
        return eof;
    }

    @Override
    public void close() {
        if (permit != null) {
            permit.close();
            permit = null;
        }
    }

    private void counted(int n) {
        if (n < 0) {
            eof = true;
            return;
        }
        read += n;
        if (read > maxBytes) {
            throw new OpenAiException(413, "invalid_request_error", "request_too_large", null,
                    "the request body exceeds the limit of " + maxBytes + " bytes");
        }
        if (permit == null && intake.isLarge(read)) {
            permit = intake.admit(read);
        }
    }

    @Override
    public ServletInputStream getInputStream() throws IOException {
        if (stream == null) {
            ServletInputStream in = super.getInputStream();
            stream = new ServletInputStream() {
                @Override
                public int read() throws IOException {
                    beforeRead();
                    int b = in.read();
                    counted(b < 0 ? -1 : 1);
                    return b;
                }

                @Override
                public int read(byte[] buf, int off, int len) throws IOException {
                    beforeRead();
                    int n = in.read(buf, off, len);
                    counted(n);
                    return n;
                }

                @Override
                public boolean isFinished() {
                    return in.isFinished();
                }

                @Override
                public boolean isReady() {
                    return in.isReady();
                }

                @Override
                public void setReadListener(ReadListener listener) {
                    in.setReadListener(listener);
                }
            };
        }
        return stream;
    }

    @Override
    public BufferedReader getReader() throws IOException {
        String cs = getCharacterEncoding();
        return new BufferedReader(new InputStreamReader(getInputStream(),
                cs == null ? StandardCharsets.UTF_8 : java.nio.charset.Charset.forName(cs)));
    }
}
