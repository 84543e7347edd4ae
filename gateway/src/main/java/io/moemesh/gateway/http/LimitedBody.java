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
 * no Content-Length (chunked transfer): past {@code maxBytes} the read fails with 413; past the intake limiter's
 * large threshold it needs a large-request permit (429 when none is free) before the next byte is handed out.
 * The permit is held until {@link #close()}, after the handler parsed and tokenized the request.
 */
final class LimitedBody extends HttpServletRequestWrapper implements AutoCloseable {
    private final long maxBytes;
    private final IntakeLimiter intake;
    private IntakeLimiter.Permit permit;
    private ServletInputStream stream;
    private long read;
    private boolean eof;

    /** @param permit already taken for a declared large Content-Length, or null */
    LimitedBody(HttpServletRequest request, long maxBytes, IntakeLimiter intake, IntakeLimiter.Permit permit) {
        super(request);
        this.maxBytes = maxBytes;
        this.intake = intake;
        this.permit = permit;
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
                    int b = in.read();
                    counted(b < 0 ? -1 : 1);
                    return b;
                }

                @Override
                public int read(byte[] buf, int off, int len) throws IOException {
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
