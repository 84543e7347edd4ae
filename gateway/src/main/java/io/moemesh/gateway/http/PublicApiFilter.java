package io.moemesh.gateway.http;

import io.moemesh.gateway.auth.ApiKeys;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.ServingClock;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;
import org.slf4j.MDC;
import org.springframework.web.filter.OncePerRequestFilter;
import tools.jackson.databind.json.JsonMapper;

/**
 * For every request: a request id (the caller's X-Request-Id when it is sane, else a new UUID) returned in
 * the response and put in the log context; for {@code /v1/**}: the body limits and the API key → tenant, or
 * 401, in OpenAI's error JSON. Keys are never logged.
 *
 * <p>Body limits, before anything parses the body: a declared Content-Length over {@code maxRequestBytes} is 413 at
 * once; a body without one is counted as it is read ({@link LimitedBody}) and fails with 413 past the limit. A
 * large body (see {@link IntakeLimiter}) needs a permit for its parsing and tokenization, taken when the handler
 * reads its first byte (for a declared length) or when the count passes the threshold; none free = 429 with
 * Retry-After at once. The permit is not taken here: the handler first charges the tenant's rate, so a tenant past
 * it is refused without holding one (OpenAiController). A large body must arrive whole within {@code readTimeout}
 * of its permit, else 408 and the permit is given back at the deadline ({@link LimitedBody}). When a request is
 * refused before its body was read (413, 401, 429, or a 4xx from parsing), the rest of the body (up to the limit) is
 * read and dropped so the client, still sending, sees the answer instead of a reset connection; a longer rest closes
 * the connection. A body that missed its deadline is not read further: its connection is closed after the 408.
 *
 * <p>Which requests are {@code /v1/**} is decided on the path as it is routed, not on the raw request URI: the
 * container decodes {@code %XX}, drops {@code ;parameters} and resolves {@code //}, {@code .} and {@code ..}
 * (Tomcat's servlet path, RFC 3986 §5.2.4), and Spring MVC matches decoded segments without their parameters, so
 * {@code /v1;x=1/completions} or {@code /%761/completions} reach the API's handlers though their raw URI does not
 * start with {@code /v1/}. Every request whose resolved path is under {@code /v1} (any case) gets the checks, and
 * one whose raw path differs from its resolved path is refused with 400 {@code invalid_path} before anything else:
 * the API's paths are plain ASCII, so such a path is only ever an attempt to look like something else. The one
 * exception is a model id after {@code /v1/models/}, which clients percent-encode ({@code org%2Fname}): it passes
 * when it decodes to exactly what the container resolved ({@link ModelIdPath}), and gets the checks like any other.
 *
 * <p>A 401 carries {@code WWW-Authenticate: Bearer} (RFC 9110 §15.5.2 requires the challenge; the key is a bearer
 * token, RFC 6750).
 */
public final class PublicApiFilter extends OncePerRequestFilter {
    private static final Pattern SANE_ID = Pattern.compile("[A-Za-z0-9._:-]{1,128}");
    private final ApiKeys keys;
    private final JsonMapper json;
    private final long maxRequestBytes;
    private final IntakeLimiter intake;
    private final ServingClock clock;
    private final Duration readTimeout;

    /** @param readTimeout how long a large body may take to arrive (moemesh.gateway.admission.request-read-timeout) */
    public PublicApiFilter(ApiKeys keys, JsonMapper json, long maxRequestBytes, IntakeLimiter intake,
                           ServingClock clock, Duration readTimeout) {
        this.clock = clock;
        this.readTimeout = readTimeout;
        this.keys = keys;
        this.json = json;
        this.maxRequestBytes = maxRequestBytes;
        this.intake = intake;
    }

    private void reject(HttpServletResponse res, int status, String message, String type, String code)
            throws IOException {
        res.setStatus(status);
        res.setContentType("application/json");
        res.getWriter().write(json.writeValueAsString(OpenAiErrors.body(message, type, null, code)));
    }

    @Override
    protected void doFilterInternal(HttpServletRequest req, HttpServletResponse res, FilterChain chain)
            throws ServletException, IOException {
        // The request's arrival (TTFT and E2E start here): its body is read, parsed and tokenized after this.
        req.setAttribute(RequestIds.ARRIVAL_ATTRIBUTE, clock.getAsLong());
        String given = req.getHeader(RequestIds.HEADER);
        String id = given != null && SANE_ID.matcher(given).matches() ? given : UUID.randomUUID().toString();
        req.setAttribute(RequestIds.ATTRIBUTE, id);
        res.setHeader(RequestIds.HEADER, id);
        MDC.put("requestId", id);
        try {
            String resolved = req.getContextPath() + req.getServletPath() + Objects.toString(req.getPathInfo(), "");
            String raw = req.getRequestURI();
            if (!isApi(resolved) && !isApi(raw)) {
                chain.doFilter(req, res);
                return;
            }
            if (!raw.equals(resolved) && !ModelIdPath.isEncodedModelId(raw, resolved)) {
                drain(req, res);
                reject(res, 400, "the request path must be plain: no path parameters (;), percent-escapes (but in "
                        + "the model id of /v1/models/{id}), empty or dot segments", "invalid_request_error",
                        "invalid_path");
                return;
            }
            long declared = req.getContentLengthLong();
            if (declared > maxRequestBytes) {
                drain(req, res);
                reject(res, 413, "the request body of " + declared + " bytes exceeds the limit of " + maxRequestBytes
                        + " bytes", "invalid_request_error", "request_too_large");
                return;
            }
            if (keys.enabled()) {
                String header = req.getHeader("Authorization");
                Optional<String> tenant = keys.tenantOf(ApiKeys.bearer(header));
                if (tenant.isEmpty()) {
                    // As for 413 and 429: a client still sending its body must get to read the 401.
                    drain(req, res);
                    res.setHeader("WWW-Authenticate", "Bearer");
                    reject(res, 401, header == null ? "missing API key: send \"Authorization: Bearer KEY\""
                            : "incorrect API key provided", "invalid_request_error", "invalid_api_key");
                    return;
                }
                req.setAttribute(Tenant.ATTRIBUTE, tenant.get());
            }
            try (LimitedBody body = new LimitedBody(req, maxRequestBytes, intake, declared, readTimeout)) {
                try {
                    chain.doFilter(body, res);
                } finally {
                    if (body.timedOut()) {
                        // Draining a body that came too slowly would wait for it all over again.
                        res.setHeader("Connection", "close");
                    } else if (res.getStatus() >= 400 && !body.fullyRead() && !req.isAsyncStarted()) {
                        // Refused (413, 429, a parse error) before the body was read to its end.
                        drain(req, res);
                    }
                }
            }
        } finally {
            MDC.remove("requestId");
        }
    }

    /** {@code /v1} or below it, in any case (a different case is not routed, but is not let past the checks). */
    private static boolean isApi(String path) {
        return path.regionMatches(true, 0, "/v1", 0, 3) && (path.length() == 3 || path.charAt(3) == '/');
    }

    /**
     * Reads and drops what is left of the body, up to {@code maxRequestBytes}: a client that is still sending
     * reads the answer only once the server has taken what it sent (or the connection is closed). Past that, the
     * connection is closed after the answer.
     */
    private void drain(HttpServletRequest req, HttpServletResponse res) {
        byte[] buf = new byte[16384];
        long left = maxRequestBytes;
        try {
            InputStream in = req.getInputStream();
            while (left > 0) {
                int n = in.read(buf, 0, (int) Math.min(buf.length, left));
                if (n < 0) {
                    return;
                }
                left -= n;
            }
        } catch (IOException | RuntimeException e) {
            // Nothing more to read (the client stopped, or the container consumed the body already).
        }
        res.setHeader("Connection", "close");
    }
}
