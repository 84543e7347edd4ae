package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.OverloadedException;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.springframework.http.HttpHeaders;
import org.springframework.http.ResponseEntity;
import tools.jackson.databind.json.JsonMapper;

/**
 * Receives a /v1 request's body without a container thread: the request goes asynchronous and this reads what has
 * arrived each time the container says bytes are ready (Servlet non-blocking I/O), so a client that sends its body
 * slowly, or never, holds a connection but no worker, and cannot starve the worker pool the whole API (and the
 * listener's self-probe) runs on. Blocking reads could not be bounded so: Tomcat gives each wait for bytes its own
 * read timeout, so a byte every minute held a worker for as long as the client liked.
 *
 * <p>The whole body must arrive within {@code readTimeout} (moemesh.gateway.admission.request-read-timeout), else
 * 408 and the connection is closed at the deadline. Its bytes go through {@link BodyBuffer} (413, 429); once whole
 * it is handed to an async dispatch of the same request ({@link #RECEIVED_ATTRIBUTE}), where the filter gives it to
 * the handler to parse. A refused body, here or before its first byte ({@link #refuse}), is answered at once with
 * {@code Connection: close}; what keeps arriving is read and dropped while it keeps arriving (no pause of
 * {@link #DISCARD_IDLE} or more), up to {@link BodyLimits#discardBytes()} and the same deadline, so that a client
 * that sends its whole body before it reads (Python's http.client) reads the answer rather than a reset connection;
 * then the connection is closed, which ends the answer: it has no Content-Length, since Tomcat closes a request's
 * input once its response has all its declared bytes. An asynchronous request with {@code Connection: close} is
 * closed without Tomcat reading the rest of its body, which it would do blocking on a worker for a synchronous one.
 */
final class BodyIntake implements ReadListener, AsyncListener {
    /** The request attribute a whole body is handed to the async dispatch with ({@link ReceivedBody}). */
    static final String RECEIVED_ATTRIBUTE = "moemesh.received-body";

    /** A refused body that pauses this long is not arriving: its connection is closed rather than waited on. */
    static final Duration DISCARD_IDLE = Duration.ofSeconds(1);
    /** One daemon thread for every refused body's idle check: it only completes requests, never waits. */
    private static final ScheduledThreadPoolExecutor IDLE_CHECKS = idleChecks();

    private enum State { RECEIVING, DISCARDING, DONE }

    private final AsyncContext async;
    private final HttpServletRequest request;
    private final HttpServletResponse response;
    private final ServletInputStream in;
    private final BodyLimits limits;
    private final JsonMapper json;
    /**
     * The body being received; null for one refused before BodyIntake took over, and once handed over: Tomcat keeps
     * this listener until the request is recycled, which must not keep the body's bytes for the whole response.
     */
    private BodyBuffer body;
    /** The read buffer; null once the body is handed over (nothing more is read). */
    private byte[] chunk = new byte[16_384];
    private State state;
    private long discarded;
    private long lastReadNanos = System.nanoTime();
    private ScheduledFuture<?> idleCheck;

    private BodyIntake(HttpServletRequest request, HttpServletResponse response, BodyLimits limits, JsonMapper json,
                       BodyBuffer body) throws IOException {
        this.async = request.startAsync(request, response);
        this.request = request;
        this.response = response;
        this.in = request.getInputStream();
        this.limits = limits;
        this.json = json;
        this.body = body;
        this.state = State.RECEIVING;
        // The deadline of the whole body, from the end of its headers (microseconds ago).
        async.setTimeout(Math.max(1, limits.readTimeout().toMillis()));
        async.addListener(this);
    }

    private static ScheduledThreadPoolExecutor idleChecks() {
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1,
                Thread.ofPlatform().name("http-body-idle").daemon().factory());
        // Most checks are cancelled by their body's end: do not keep them queued until they would have run.
        t.setRemoveOnCancelPolicy(true);
        return t;
    }

    /** Receives {@code body} for {@code request}; the calling container thread returns at once. */
    static void receive(HttpServletRequest request, HttpServletResponse response, BodyLimits limits, JsonMapper json,
                        BodyBuffer body) throws IOException {
        BodyIntake intake = new BodyIntake(request, response, limits, json, body);
        intake.in.setReadListener(intake);
    }

    /**
     * Answers {@code refusal} now, before the rest of the body, with {@code Connection: close}; what keeps arriving
     * of the body is then read and dropped without a worker (see the class comment for how long).
     */
    static void refuse(HttpServletRequest request, HttpServletResponse response, BodyLimits limits, JsonMapper json,
                       RuntimeException refusal) throws IOException {
        BodyIntake intake = new BodyIntake(request, response, limits, json, null);
        synchronized (intake) {
            intake.discarding(refusal);
            if (intake.state != State.DONE) {
                intake.in.setReadListener(intake);
            }
        }
    }

    /**
     * Writes {@code refusal} as OpenAI's error JSON (OpenAiErrors), flushed. With {@code close}, the answer says
     * Connection: close and has no Content-Length (it ends when the connection is closed): with one, Tomcat would
     * close the request's input as soon as the answer is written, and the rest of the body could not be dropped.
     */
    static void answer(HttpServletResponse response, JsonMapper json, RuntimeException refusal, String requestId,
                       boolean close) throws IOException {
        ResponseEntity<Map<String, Object>> r = OpenAiErrors.of(refusal, requestId);
        response.setStatus(r.getStatusCode().value());
        r.getHeaders().forEach((name, values) -> {
            if (!name.equalsIgnoreCase(HttpHeaders.CONTENT_TYPE)) {
                values.forEach(v -> response.addHeader(name, v));
            }
        });
        byte[] bytes = json.writeValueAsBytes(r.getBody());
        response.setContentType("application/json");
        if (close) {
            response.setHeader("Connection", "close");
        } else {
            response.setContentLength(bytes.length);
        }
        response.getOutputStream().write(bytes);
        response.flushBuffer();
    }

    @Override
    public synchronized void onDataAvailable() throws IOException {
        while (state != State.DONE && in.isReady()) {
            int n = in.read(chunk);
            if (n < 0) {
                return; // onAllDataRead follows
            }
            lastReadNanos = System.nanoTime();
            if (state == State.RECEIVING) {
                try {
                    body.add(chunk, 0, n);
                } catch (OpenAiException | OverloadedException e) {
                    discarding(e);
                }
            } else if ((discarded += n) > limits.discardBytes()) {
                // A rest this long is not worth reading: the connection is closed under it.
                end();
            }
        }
    }

    /** Answers {@code refusal} and drops the rest of the body from now on, while it keeps arriving. */
    private void discarding(RuntimeException refusal) throws IOException {
        if (body != null) {
            body.release();
        }
        state = State.DISCARDING;
        lastReadNanos = System.nanoTime();
        // Checked four times per idle period: a body that stopped is closed on within 1.25 of them.
        long every = DISCARD_IDLE.toNanos() / 4;
        idleCheck = IDLE_CHECKS.scheduleWithFixedDelay(this::closeIfIdle, every, every, TimeUnit.NANOSECONDS);
        answer(response, json, refusal, RequestIds.current(request), true);
        if (in.isFinished()) {
            end();
        }
    }

    /** On the idle checks' thread: a refused body that stopped arriving has its connection closed. */
    private synchronized void closeIfIdle() {
        if (state == State.DISCARDING && System.nanoTime() - lastReadNanos >= DISCARD_IDLE.toNanos()) {
            try {
                end();
            } catch (RuntimeException e) {
                // The request ended meanwhile (the client went away): nothing left to close.
                state = State.DONE;
                cancelIdleCheck();
            }
        }
    }

    @Override
    public synchronized void onAllDataRead() {
        if (state == State.RECEIVING) {
            state = State.DONE;
            request.setAttribute(RECEIVED_ATTRIBUTE, body.finish());
            body = null;
            chunk = null;
            async.dispatch();
        } else {
            end();
        }
    }

    /**
     * Reading failed: the client went away, or sent a malformed chunk. The container closes the connection and
     * reports the error to the async listeners next ({@link #onError(AsyncEvent)}), which complete the request.
     */
    @Override
    public synchronized void onError(Throwable t) {
        try {
            if (state == State.RECEIVING && !response.isCommitted()) {
                body.release();
                // Tomcat's own wait for the next bytes timed out (server.tomcat.connection-timeout, when shorter
                // than the whole body's deadline): the client was too slow, not its body malformed.
                answer(response, json, t instanceof SocketTimeoutException
                        ? new OpenAiException(408, "invalid_request_error", "request_timeout", null, "no bytes of the "
                                + "request body arrived for the container's read timeout (server.tomcat."
                                + "connection-timeout)")
                        : OpenAiException.invalid(null, "the request body could not be read: " + t.getMessage()),
                        RequestIds.current(request), true);
            }
        } catch (IOException | RuntimeException e) {
            // The client is gone: no one to answer.
        } finally {
            state = State.DONE;
            cancelIdleCheck();
            release();
        }
    }

    /** The deadline of the whole body (the container's async timeout). */
    @Override
    public synchronized void onTimeout(AsyncEvent event) throws IOException {
        try {
            if (state == State.RECEIVING) {
                body.release();
                state = State.DISCARDING;
                // Answered and closed at once: past the deadline nothing more of the body is read.
                answer(response, json, new OpenAiException(408, "invalid_request_error", "request_timeout", null,
                        "the request body did not arrive whole within " + limits.readTimeout().toMillis() + " ms "
                                + "(moemesh.gateway.admission.request-read-timeout)"), RequestIds.current(request),
                        true);
            }
        } finally {
            completeAfterError();
        }
    }

    /**
     * The request failed (a read error, the client gone). Completed here, whatever the intake's state: a request
     * left in error is handed to the container's error page, which would log a client's disconnect as a failure.
     */
    @Override
    public synchronized void onError(AsyncEvent event) {
        completeAfterError();
    }

    @Override
    public synchronized void onComplete(AsyncEvent event) {
        state = State.DONE;
        cancelIdleCheck();
        release();
    }

    @Override
    public void onStartAsync(AsyncEvent event) {
        // The handler's own asynchronous processing (its answer): nothing of this intake's.
    }

    /** Whatever the body still holds, also a whole one whose dispatch never ran; each release is idempotent. */
    private synchronized void release() {
        if (body != null) {
            body.release();
        }
        if (request.getAttribute(RECEIVED_ATTRIBUTE) instanceof ReceivedBody received) {
            received.close();
        }
    }

    private void completeAfterError() {
        state = State.DONE;
        cancelIdleCheck();
        release();
        try {
            async.complete();
        } catch (IllegalStateException e) {
            // Completed already.
        }
    }

    private void end() {
        if (state != State.DONE) {
            state = State.DONE;
            cancelIdleCheck();
            if (body != null) {
                body.release();
            }
            async.complete();
        }
    }

    /** Whether this intake still references the body or its read buffer (tests). */
    synchronized boolean holdsBody() {
        return body != null || chunk != null;
    }

    private void cancelIdleCheck() {
        if (idleCheck != null) {
            idleCheck.cancel(false);
        }
    }
}
