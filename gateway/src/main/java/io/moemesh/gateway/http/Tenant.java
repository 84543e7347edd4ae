package io.moemesh.gateway.http;

import jakarta.servlet.http.HttpServletRequest;

/** The tenant of an HTTP request, set by {@link PublicApiFilter} ("default" when auth is off). */
final class Tenant {
    static final String ATTRIBUTE = "moemesh.tenant";
    /** Set once the request was charged to its tenant's rate (PublicApiFilter, once a generation POST is authenticated). */
    static final String RATE_CHARGED_ATTRIBUTE = "moemesh.rate-charged";

    private Tenant() {
    }

    static String of(HttpServletRequest r) {
        Object t = r.getAttribute(ATTRIBUTE);
        return t == null ? "default" : t.toString();
    }
}
