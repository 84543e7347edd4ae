package io.moemesh.gateway.http;

import io.moemesh.gateway.auth.ApiKeys;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;
import org.slf4j.MDC;
import org.springframework.web.filter.OncePerRequestFilter;
import tools.jackson.databind.json.JsonMapper;

/**
 * For every request: a request id (the caller's X-Request-Id when it is sane, else a new UUID) returned in
 * the response and put in the log context; for {@code /v1/**}: a body size limit (413) and the API key →
 * tenant, or 401, both in OpenAI's error JSON. Keys are never logged.
 */
public final class PublicApiFilter extends OncePerRequestFilter {
    private static final Pattern SANE_ID = Pattern.compile("[A-Za-z0-9._:-]{1,128}");
    private final ApiKeys keys;
    private final JsonMapper json;
    private final long maxRequestBytes;

    public PublicApiFilter(ApiKeys keys, JsonMapper json, long maxRequestBytes) {
        this.keys = keys;
        this.json = json;
        this.maxRequestBytes = maxRequestBytes;
    }

    private void reject(HttpServletResponse res, int status, String message, String code) throws IOException {
        res.setStatus(status);
        res.setContentType("application/json");
        res.getWriter().write(json.writeValueAsString(OpenAiErrors.body(message, "invalid_request_error", null, code)));
    }

    @Override
    protected void doFilterInternal(HttpServletRequest req, HttpServletResponse res, FilterChain chain)
            throws ServletException, IOException {
        String given = req.getHeader(RequestIds.HEADER);
        String id = given != null && SANE_ID.matcher(given).matches() ? given : UUID.randomUUID().toString();
        req.setAttribute(RequestIds.ATTRIBUTE, id);
        res.setHeader(RequestIds.HEADER, id);
        MDC.put("requestId", id);
        try {
            boolean api = req.getRequestURI().startsWith("/v1/");
            if (api && req.getContentLengthLong() > maxRequestBytes) {
                reject(res, 413, "the request body of " + req.getContentLengthLong() + " bytes exceeds the limit of "
                        + maxRequestBytes + " bytes", "request_too_large");
                return;
            }
            if (keys.enabled() && api) {
                String header = req.getHeader("Authorization");
                Optional<String> tenant = keys.tenantOf(ApiKeys.bearer(header));
                if (tenant.isEmpty()) {
                    reject(res, 401, header == null ? "missing API key: send \"Authorization: Bearer KEY\""
                            : "incorrect API key provided", "invalid_api_key");
                    return;
                }
                req.setAttribute(Tenant.ATTRIBUTE, tenant.get());
            }
            chain.doFilter(req, res);
        } finally {
            MDC.remove("requestId");
        }
    }
}
