package io.moemesh.gateway.http;

import jakarta.servlet.http.HttpServletRequest;

/** The tenant of an HTTP request, set by {@link PublicApiFilter} ("default" when auth is off). */
final class Tenant {
    static final String ATTRIBUTE = "moemesh.tenant";

    private Tenant() {
    }

    static String of(HttpServletRequest r) {
        Object t = r.getAttribute(ATTRIBUTE);
        return t == null ? "default" : t.toString();
    }
}
