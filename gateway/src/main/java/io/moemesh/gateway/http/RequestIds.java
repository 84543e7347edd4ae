package io.moemesh.gateway.http;

import jakarta.servlet.http.HttpServletRequest;

/**
 * The request id of an HTTP request: the caller's X-Request-Id or a generated one, and its arrival time (both set by
 * {@link PublicApiFilter}).
 */
final class RequestIds {
    static final String HEADER = "X-Request-Id";
    static final String ATTRIBUTE = "moemesh.request-id";
    /** {@link System#nanoTime()} when the filter saw the request: before its body was read. */
    static final String ARRIVAL_ATTRIBUTE = "moemesh.arrival-nanos";

    private RequestIds() {
    }

    /** When the request arrived ({@link #ARRIVAL_ATTRIBUTE}); now for one the filter did not see. */
    static long arrivalNanos(HttpServletRequest r) {
        return r.getAttribute(ARRIVAL_ATTRIBUTE) instanceof Long nanos ? nanos : System.nanoTime();
    }

    static String current(HttpServletRequest r) {
        Object id = r.getAttribute(ATTRIBUTE);
        return id == null ? "" : id.toString();
    }
}
