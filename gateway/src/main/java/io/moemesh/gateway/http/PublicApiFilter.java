package io.moemesh.gateway.http;

import io.moemesh.gateway.auth.ApiKeys;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.OverloadedException;
import io.moemesh.gateway.serving.ServingClock;
import jakarta.servlet.DispatcherType;
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
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.slf4j.MDC;
import org.springframework.web.filter.OncePerRequestFilter;
import tools.jackson.databind.json.JsonMapper;

/**
 * For every request: a request id (the caller's X-Request-Id when it is sane, else a new UUID) returned in
 * the response and put in the log context; for {@code /v1/**}: the body limits and the API key → tenant, or
 * 401, in OpenAI's error JSON. Keys are never logged.
 *
 * <p>A body is received whole before the handler runs, and never by a worker waiting for a client's bytes: what
 * has arrived with its headers (Tomcat holds it already) is taken at once, and when that is all of it the handler
 * runs right away; the rest is received asynchronously ({@link BodyIntake}: Servlet non-blocking reads), and the
 * handler runs on an async dispatch of the request once it is whole ({@link ReceivedBody}). Either way it must arrive whole within {@code readTimeout}
 * (moemesh.gateway.admission.request-read-timeout) of the end of its headers, else 408 and the connection is closed
 * at the deadline: a slow client holds a connection for at most that long, and no worker at all. The limits, before
 * anything parses the body: a declared Content-Length over {@code maxRequestBytes} is 413 at once; a body without
 * one is counted as it arrives ({@link BodyBuffer}) and is 413 past the limit. A completions or chat POST is charged
 * to its tenant's rate here, right after its path check and authentication (a 400 {@code invalid_path} and a 401 are
 * the only refusals not charged), before its body's size, Content-Type or content is looked at and before its first
 * byte is taken in, whether it is then served or refused (413 declared or counted, 415, 400, 408, 429): a tenant past
 * its rate is 429 at once, so it cannot hold connections, received bytes or a large-request permit uncharged. A large body (see
 * {@link IntakeLimiter}) needs a permit for its parsing and tokenization before more than the large size of it is
 * taken in (at once for a declared length); none free = 429 with Retry-After at once. The bytes of all bodies being
 * received are bounded together ({@link HeldBodyBytes}, 429 past it). A request refused before its body arrived
 * (400 path, 401, 429, 413) is answered at once with {@code Connection: close}, without waiting for the body: what
 * keeps arriving is read and dropped without a worker while it keeps coming (a pause of
 * {@link BodyIntake#DISCARD_IDLE} ends it), within the deadline and twice the limit, so a client still sending reads
 * the answer instead of a reset connection, and then the connection is closed; one whose body the container held
 * whole already (dropped here) is answered without Connection: close and keeps its connection.
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
    private final BodyLimits limits;
    private final ServingClock clock;

    /**
     * @param readTimeout   how long a body may take to arrive whole (moemesh.gateway.admission.request-read-timeout)
     * @param maxHeldBytes  bytes the bodies being received may hold together
     *                      (moemesh.gateway.admission.max-held-request-bytes)
     * @param chargeRate    charges a tenant's rate, throwing OverloadedException past it (GenerationService)
     */
    public PublicApiFilter(ApiKeys keys, JsonMapper json, long maxRequestBytes, IntakeLimiter intake,
                           ServingClock clock, Duration readTimeout, long maxHeldBytes, Consumer<String> chargeRate) {
        this.clock = clock;
        this.keys = keys;
        this.json = json;
        this.limits = new BodyLimits(maxRequestBytes, intake, new HeldBodyBytes(maxHeldBytes), readTimeout,
                chargeRate);
    }

    /** Bytes of the bodies being received now, not yet parsed ({@link HeldBodyBytes}). */
    long heldBodyBytes() {
        return limits.held().held();
    }

    /** The async dispatch that hands a received body to the handler comes through here too. */
    @Override
    protected boolean shouldNotFilterAsyncDispatch() {
        return false;
    }

    @Override
    protected void doFilterInternal(HttpServletRequest req, HttpServletResponse res, FilterChain chain)
            throws ServletException, IOException {
        if (req.getDispatcherType() == DispatcherType.ASYNC) {
            asyncDispatch(req, res, chain);
            return;
        }
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
            long declared = req.getContentLengthLong();
            if (!raw.equals(resolved) && !ModelIdPath.isEncodedModelId(raw, resolved)) {
                refuse(req, res, declared, new OpenAiException(400, "invalid_request_error", "invalid_path", null,
                        "the request path must be plain: no path parameters (;), percent-escapes (but in the model "
                                + "id of /v1/models/{id}), empty or dot segments"));
                return;
            }
            if (keys.enabled()) {
                String header = req.getHeader("Authorization");
                Optional<String> tenant = keys.tenantOf(ApiKeys.bearer(header));
                if (tenant.isEmpty()) {
                    res.setHeader("WWW-Authenticate", "Bearer");
                    refuse(req, res, declared, new OpenAiException(401, "invalid_request_error", "invalid_api_key",
                            null, header == null ? "missing API key: send \"Authorization: Bearer KEY\""
                            : "incorrect API key provided"));
                    return;
                }
                req.setAttribute(Tenant.ATTRIBUTE, tenant.get());
            }
            if (isGeneration(req, resolved)) {
                // Charged once authenticated, before any check of its body (size, Content-Type, JSON) and before
                // its first byte is taken in: every refusal after this one costs the tenant alike, and a body that
                // never completes (408, the client gone, a 429 of the held bytes) is charged too.
                try {
                    limits.chargeRate().accept(Tenant.of(req));
                } catch (OverloadedException e) {
                    refuse(req, res, declared, e);
                    return;
                }
                req.setAttribute(Tenant.RATE_CHARGED_ATTRIBUTE, Boolean.TRUE);
            }
            if (declared > limits.maxBytes()) {
                refuse(req, res, declared, new OpenAiException(413, "invalid_request_error", "request_too_large",
                        null, "the request body of " + declared + " bytes exceeds the limit of " + limits.maxBytes()
                        + " bytes"));
                return;
            }
            if (!hasBody(req, declared)) {
                chain.doFilter(req, res);
                return;
            }
            BodyBuffer body = new BodyBuffer(limits, declared);
            try {
                body.start();
                takeBuffered(req.getInputStream(), body, declared);
            } catch (OpenAiException | OverloadedException e) {
                body.release();
                long rest = declared - body.taken();
                if (declared > 0 && skipBuffered(req.getInputStream(), rest) == rest) {
                    // The container held all of it: dropped to its end, the connection stays usable.
                    BodyIntake.answer(res, json, e, id, false);
                } else {
                    BodyIntake.refuse(req, res, limits, json, e);
                }
                return;
            } catch (IOException | RuntimeException e) {
                body.release();
                throw e;
            }
            if (declared < 0 || body.count() < declared) {
                // The rest is still on its way: received without a worker, the handler runs once it is whole.
                try {
                    BodyIntake.receive(req, res, limits, json, body);
                } catch (IOException | RuntimeException e) {
                    // The request did not go asynchronous (or its listener is not set): nothing else would give
                    // back the body's permit and bytes. Twice is once, should the listener release them too.
                    body.release();
                    throw e;
                }
                return;
            }
            try (ReceivedBody received = body.finish()) {
                chain.doFilter(received.wrap(req), res);
            }
        } finally {
            MDC.remove("requestId");
        }
    }

    /**
     * An async dispatch: the one BodyIntake made with a whole body (handed to the handler here), or one of the
     * handler's own (its answer, a stream: nothing of the filter's to do).
     */
    private static void asyncDispatch(HttpServletRequest req, HttpServletResponse res, FilterChain chain)
            throws ServletException, IOException {
        MDC.put("requestId", RequestIds.current(req));
        try {
            if (req.getAttribute(BodyIntake.RECEIVED_ATTRIBUTE) instanceof ReceivedBody received) {
                req.removeAttribute(BodyIntake.RECEIVED_ATTRIBUTE);
                // Held (permit, bytes) until the handler parsed and tokenized it: its answer is asynchronous.
                try (received) {
                    chain.doFilter(received.wrap(req), res);
                }
            } else {
                chain.doFilter(req, res);
            }
        } finally {
            MDC.remove("requestId");
        }
    }

    /**
     * Answers {@code refusal}: synchronously, keeping the connection, when the request has no body or all of it is
     * in the container's buffer already (dropped here); else at once with Connection: close, BodyIntake reading and
     * dropping the body as it comes, without a worker.
     */
    private void refuse(HttpServletRequest req, HttpServletResponse res, long declared, RuntimeException refusal)
            throws IOException {
        if (!hasBody(req, declared) || (declared > 0 && skipBuffered(req.getInputStream(), declared) == declared)) {
            BodyIntake.answer(res, json, refusal, RequestIds.current(req), false);
        } else {
            BodyIntake.refuse(req, res, limits, json, refusal);
        }
    }

    /** A generation request (completions, chat): the ones charged to their tenant's rate. */
    private static boolean isGeneration(HttpServletRequest req, String resolved) {
        return "POST".equals(req.getMethod())
                && (resolved.equals("/v1/completions") || resolved.equals("/v1/chat/completions"));
    }

    /** Whether the request has a body: a Content-Length above 0, or a chunked one (the container refuses others). */
    private static boolean hasBody(HttpServletRequest req, long declared) {
        return declared > 0 || (declared < 0 && req.getHeader("Transfer-Encoding") != null);
    }

    /**
     * Takes what the container holds of a declared body already (usually all of a small one: it came with the
     * headers), without waiting for the client: available() of a blocking stream counts what is buffered, and a
     * read of a Content-Length body returns buffered bytes without touching the socket. A chunked body is left to
     * BodyIntake: a buffered part of a chunk header would make the read wait for the rest.
     */
    private static void takeBuffered(InputStream in, BodyBuffer body, long declared) throws IOException {
        byte[] buf = null;
        while (declared > 0 && body.count() < declared && in.available() > 0) {
            if (buf == null) {
                buf = new byte[(int) Math.min(declared, 16_384)];
            }
            int n = in.read(buf, 0, (int) Math.min(buf.length, declared - body.count()));
            if (n < 0) {
                return;
            }
            body.add(buf, 0, n);
        }
    }

    /** Drops what the container holds of a declared body already (as {@link #takeBuffered}); returns how much. */
    private static long skipBuffered(InputStream in, long declared) throws IOException {
        byte[] buf = new byte[16_384];
        long skipped = 0;
        while (skipped < declared && in.available() > 0) {
            int n = in.read(buf, 0, (int) Math.min(buf.length, declared - skipped));
            if (n < 0) {
                break;
            }
            skipped += n;
        }
        return skipped;
    }

    /** {@code /v1} or below it, in any case (a different case is not routed, but is not let past the checks). */
    private static boolean isApi(String path) {
        return path.regionMatches(true, 0, "/v1", 0, 3) && (path.length() == 3 || path.charAt(3) == '/');
    }
}
