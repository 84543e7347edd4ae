package io.moemesh.gateway.http;

import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.gateway.scheduling.EngineStoppedException;
import io.moemesh.gateway.serving.DrainExpiredException;
import io.moemesh.gateway.serving.DrainingException;
import io.moemesh.gateway.serving.OffloadFailedException;
import io.moemesh.gateway.serving.OverloadedException;
import io.moemesh.gateway.serving.PromptTooLongException;
import io.moemesh.gateway.serving.PublicErrors;
import io.moemesh.model.engine.RemoteAttentionException;
import jakarta.servlet.http.HttpServletRequest;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.ErrorResponse;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;
import org.springframework.web.context.request.async.AsyncRequestNotUsableException;

/**
 * Every failure of the HTTP API as OpenAI's error JSON {@code {"error": {message, type, param, code}}} with the
 * status OpenAI uses: 400 bad request (a prompt that cannot fit: code {@code context_length_exceeded}), 401 auth,
 * 404 unknown model or path, 405/406/415 for the wrong method (with Allow), Accept or Content-Type, 408 a body
 * too slow (BodyIntake), 413 body too large, 429 overloaded (Retry-After), 503 no healthy experts, no
 * placement yet, the kvcache-service failing a long context's Attend, the engine thread gone or draining
 * (Retry-After), 500 a bug: the message then says only "internal error" and the request id, and the exception is
 * logged once with that id (never a class name or a stack trace on the wire). A 503 whose cause names internal
 * endpoints, instances or other requests says what failed in general terms, its detail logged with the request id
 * ({@link PublicErrors}).
 */
@RestControllerAdvice
public class OpenAiErrors {
    private static final Logger log = LoggerFactory.getLogger(OpenAiErrors.class);

    public static Map<String, Object> body(String message, String type, String param, String code) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("message", message);
        e.put("type", type);
        e.put("param", param);
        e.put("code", code);
        return Map.of("error", e);
    }

    /**
     * The response for any throwable, shared by the synchronous and the asynchronous (SSE) paths. Its content type
     * is set, so it is written as JSON whatever the request's Accept header asked for (text/event-stream).
     */
    public static ResponseEntity<Map<String, Object>> of(Throwable t, String requestId) {
        ResponseEntity<Map<String, Object>> r = entity(t, requestId);
        return ResponseEntity.status(r.getStatusCode()).headers(r.getHeaders()).contentType(MediaType.APPLICATION_JSON)
                .body(r.getBody());
    }

    private static ResponseEntity<Map<String, Object>> entity(Throwable t, String requestId) {
        if (t instanceof java.util.concurrent.CompletionException && t.getCause() != null) {
            t = t.getCause();
        }
        return switch (t) {
            case OpenAiException e -> ResponseEntity.status(e.status()).body(body(e.getMessage(), e.type(), e.param(), e.code()));
            case PromptTooLongException e -> ResponseEntity.badRequest()
                    .body(body(e.getMessage(), "invalid_request_error", e.field(), "context_length_exceeded"));
            case OverloadedException e -> ResponseEntity.status(HttpStatus.TOO_MANY_REQUESTS)
                    .header("Retry-After", Integer.toString(e.retryAfterSeconds()))
                    .body(body(e.getMessage(), "rate_limit_error", null, "rate_limit_exceeded"));
            // A replica is usually back (or the breaker half-open) within seconds: worth a retry soon.
            // Their messages name instances, endpoints, other requests' sequences: the client gets PublicErrors'.
            case ExpertUnavailableException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").body(body(PublicErrors.message(e, requestId), "service_unavailable",
                            null, "no_healthy_experts"));
            // Waiting for the router's first placement: it normally arrives within seconds of startup.
            case NoPlacementException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").body(body(PublicErrors.message(e, requestId), "service_unavailable",
                            null, "no_placement"));
            // The KV of a long context's old positions lives in the kvcache-service, which failed or was too slow:
            // the step cannot be computed without it. The blocks stay stored, so a retry finds its prefix again.
            case RemoteAttentionException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").body(body(PublicErrors.message(e, requestId), "service_unavailable",
                            null, "kvcache_unavailable"));
            // Its own prompt did not fit once its offload failed: about this request alone.
            // Retry-After: refused at submit, what remains of the refusal (rounded up), before which a retry would be
            // refused again; a prompt whose own offload failed while the service does not look down, 1.
            case OffloadFailedException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", Integer.toString(e.retryAfterSeconds())).body(body(e.getMessage(), "service_unavailable", null,
                            "kvcache_unavailable"));
            // The engine thread is gone: this replica serves nothing until it is restarted (liveness fails), another may.
            case EngineStoppedException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").body(body(e.getMessage(), "service_unavailable", null,
                            "engine_stopped"));
            // A draining gateway's answers close their connection (RFC 9112 §9.6): a keep-alive client's retry then
            // opens a new one, which a Kubernetes Service sends to a pod that serves, instead of reusing this one.
            // Tomcat closes after any 503 by itself (Http11Processor.statusDropsConnection); said here, it does not
            // depend on the container.
            case DrainingException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").header(HttpHeaders.CONNECTION, "close")
                    .body(body(e.getMessage(), "service_unavailable", null, "draining"));
            // Stopped when the drain grace ended: the whole request is worth retrying on another replica.
            case DrainExpiredException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").header(HttpHeaders.CONNECTION, "close")
                    .body(body(e.getMessage(), "service_unavailable", null, "drain_expired"));
            case IllegalArgumentException e -> ResponseEntity.badRequest()
                    .body(body(e.getMessage(), "invalid_request_error", null, null));
            default -> {
                log.error("request {} failed", requestId, t);
                yield ResponseEntity.internalServerError().body(body("internal error; request id " + requestId,
                        "server_error", null, null));
            }
        };
    }

    @ExceptionHandler(Exception.class)
    public ResponseEntity<Map<String, Object>> handle(Exception e, HttpServletRequest request) {
        if (e instanceof AsyncRequestNotUsableException) {
            // The client is gone: there is no one to answer.
            return null;
        }
        if (e instanceof org.springframework.web.servlet.resource.NoResourceFoundException) {
            return ResponseEntity.status(HttpStatus.NOT_FOUND).contentType(MediaType.APPLICATION_JSON)
                    .body(body(e.getMessage(), "invalid_request_error", null, "not_found"));
        }
        // Spring MVC's own refusals (405 method, 406 Accept, 415 Content-Type, ...) keep their 4xx status and headers:
        // a 405's Allow (RFC 9110 §15.5.6 requires it), a 415's Accept.
        if (e instanceof ErrorResponse r && r.getStatusCode().is4xxClientError()) {
            String detail = r.getBody().getDetail();
            return ResponseEntity.status(r.getStatusCode()).headers(r.getHeaders())
                    .contentType(MediaType.APPLICATION_JSON)
                    .body(body(detail == null ? e.getMessage() : detail, "invalid_request_error", null, null));
        }
        return of(e, RequestIds.current(request));
    }
}
