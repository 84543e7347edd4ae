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
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The body of a /v1 request as the handler reads it, counted byte by byte, so the limits hold also when there is
 * no Content-Length (chunked transfer): past {@code maxBytes} the read fails with 413; a declared large length, or
 * a count past the intake limiter's large threshold, needs a large-request permit (429 when none is free) before
 * the next byte is handed out: so only a handler that reads the body takes one, after its own checks (the tenant's
 * rate). The permit is held until {@link #close()}, after the handler parsed and tokenized the request.
 *
 * <p>A large body must then arrive in full within {@code readTimeout}
 * ({@code moemesh.gateway.admission.request-read-timeout}): the container's read timeout bounds each wait for
 * bytes, not the whole body, so a client sending a byte now and then would otherwise hold the permit for as long
 * as it likes. At the deadline the permit is given back at once, even while the handler's thread still waits in a
 * read, and the next read (or the one that was waiting, when it returns) fails with 408.
 */
final class LimitedBody extends HttpServletRequestWrapper implements AutoCloseable {
    /** One daemon thread for every request's deadline: it only gives permits back, never waits. */
    private static final ScheduledThreadPoolExecutor DEADLINES = deadlines();

    private final long maxBytes;
    private final IntakeLimiter intake;
    /** The Content-Length the client declared, or -1. */
    private final long declared;
    private final Duration readTimeout;
    private IntakeLimiter.Permit permit;
    private ScheduledFuture<?> deadline;
    /** The body did not arrive within the read timeout; set on the deadline's thread. */
    private volatile boolean timedOut;
    private ServletInputStream stream;
    private long read;
    private boolean eof;

    /**
     * @param declared    the request's Content-Length, or -1 when it has none
     * @param readTimeout how long a large body may take from its permit to its end
     */
    LimitedBody(HttpServletRequest request, long maxBytes, IntakeLimiter intake, long declared, Duration readTimeout) {
        super(request);
        this.maxBytes = maxBytes;
        this.intake = intake;
        this.declared = declared;
        this.readTimeout = readTimeout;
    }

    private static ScheduledThreadPoolExecutor deadlines() {
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1,
                Thread.ofPlatform().name("http-body-deadline").daemon().factory());
        // Nearly every deadline is cancelled by its body's end: do not keep them queued until they would have fired.
        t.setRemoveOnCancelPolicy(true);
        return t;
    }

    /** Before a read: a body declared large needs its permit before its first byte is taken in. */
    private void beforeRead() {
        failIfTimedOut();
        if (permit == null && intake.isLarge(declared)) {
            admit(declared);
        }
    }

    private void admit(long bytes) {
        IntakeLimiter.Permit p = intake.admit(bytes);
        permit = p;
        // Only a large body holds a permit worth bounding; the deadline's thread releases it (twice is once).
        deadline = DEADLINES.schedule(() -> {
            timedOut = true;
            p.close();
        }, readTimeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    private void failIfTimedOut() {
        if (timedOut) {
            throw new OpenAiException(408, "invalid_request_error", "request_timeout", null, "the request body did "
                    + "not arrive within " + readTimeout.toMillis() + " ms (a body over the large-request size must "
                    + "arrive whole within moemesh.gateway.admission.request-read-timeout)");
        }
    }

    /** Whether the handler read the body to its end. */
    boolean fullyRead() {
        return eof;
    }

    /** Whether the body missed its deadline: it is not worth reading what is left of it. */
    boolean timedOut() {
        return timedOut;
    }

    @Override
    public void close() {
        if (deadline != null) {
            deadline.cancel(false);
        }
        if (permit != null) {
            permit.close();
            permit = null;
        }
    }

    private void counted(int n) {
        failIfTimedOut();
        if (n < 0) {
            eof = true;
            if (deadline != null) {
                // Whole and in time: the permit stays held until close(), for the parsing and tokenization.
                deadline.cancel(false);
            }
            return;
        }
        read += n;
        if (read > maxBytes) {
            throw new OpenAiException(413, "invalid_request_error", "request_too_large", null,
                    "the request body exceeds the limit of " + maxBytes + " bytes");
        }
        if (permit == null && intake.isLarge(read)) {
            admit(read);
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
