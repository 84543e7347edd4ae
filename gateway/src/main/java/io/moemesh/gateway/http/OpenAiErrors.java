package io.moemesh.gateway.http;

import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.serving.DrainingException;
import io.moemesh.gateway.serving.OverloadedException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.http.converter.HttpMessageNotReadableException;
import org.springframework.web.HttpMediaTypeNotSupportedException;
import org.springframework.web.HttpRequestMethodNotSupportedException;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;

/**
 * Every failure of the HTTP API as OpenAI's error JSON {@code {"error": {message, type, param, code}}} with the
 * status OpenAI uses: 400 bad request, 401 auth, 404 unknown model, 429 overloaded (Retry-After), 503 no
 * healthy experts or draining, 500 a bug (message only, never a stack trace).
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

    /** The response for any throwable, shared by the synchronous and the asynchronous (SSE) paths. */
    public static ResponseEntity<Map<String, Object>> of(Throwable t) {
        if (t instanceof java.util.concurrent.CompletionException && t.getCause() != null) {
            t = t.getCause();
        }
        return switch (t) {
            case OpenAiException e -> ResponseEntity.status(e.status()).body(body(e.getMessage(), e.type(), e.param(), e.code()));
            case OverloadedException e -> ResponseEntity.status(HttpStatus.TOO_MANY_REQUESTS)
                    .header("Retry-After", Integer.toString(e.retryAfterSeconds()))
                    .body(body(e.getMessage(), "rate_limit_error", null, "rate_limit_exceeded"));
            case ExpertUnavailableException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .body(body(e.getMessage(), "service_unavailable", null, "no_healthy_experts"));
            case DrainingException e -> ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header("Retry-After", "1").body(body(e.getMessage(), "service_unavailable", null, "draining"));
            case IllegalArgumentException e -> ResponseEntity.badRequest()
                    .body(body(e.getMessage(), "invalid_request_error", null, null));
            default -> {
                log.error("request failed", t);
                yield ResponseEntity.internalServerError().body(body(t.getClass().getSimpleName() + ": " + t.getMessage(),
                        "server_error", null, null));
            }
        };
    }

    @ExceptionHandler(Exception.class)
    public ResponseEntity<Map<String, Object>> handle(Exception e) {
        if (e instanceof HttpMessageNotReadableException) {
            return ResponseEntity.badRequest().body(body("the request body is not valid JSON", "invalid_request_error",
                    null, null));
        }
        if (e instanceof HttpRequestMethodNotSupportedException m) {
            return ResponseEntity.status(HttpStatus.METHOD_NOT_ALLOWED).body(body(m.getMessage(),
                    "invalid_request_error", null, null));
        }
        if (e instanceof HttpMediaTypeNotSupportedException m) {
            return ResponseEntity.status(HttpStatus.UNSUPPORTED_MEDIA_TYPE).body(body(m.getMessage(),
                    "invalid_request_error", null, null));
        }
        if (e instanceof org.springframework.web.servlet.resource.NoResourceFoundException) {
            return ResponseEntity.status(HttpStatus.NOT_FOUND).body(body(e.getMessage(), "invalid_request_error", null,
                    "not_found"));
        }
        return of(e);
    }
}
