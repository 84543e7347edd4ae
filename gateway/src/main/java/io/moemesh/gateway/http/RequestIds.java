package io.moemesh.gateway.http;

import jakarta.servlet.http.HttpServletRequest;

/** The request id of an HTTP request: the caller's X-Request-Id or a generated one (see {@link PublicApiFilter}). */
final class RequestIds {
    static final String HEADER = "X-Request-Id";
    static final String ATTRIBUTE = "moemesh.request-id";

    private RequestIds() {
    }

    static String current(HttpServletRequest r) {
        Object id = r.getAttribute(ATTRIBUTE);
        return id == null ? "" : id.toString();
    }
}
