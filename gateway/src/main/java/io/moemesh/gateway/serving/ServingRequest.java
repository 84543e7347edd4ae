package io.moemesh.gateway.serving;

import io.moemesh.model.generate.GenerationRequest;
import java.util.List;
import java.util.Set;

/**
 * A request as every public API hands it to the {@link GenerationService}.
 *
 * @param stop         at most {@link #MAX_STOP} non-empty strings of at most {@link #MAX_STOP_CHARS} UTF-16 units
 *                     each (the APIs check their own, possibly lower, limits first and name their field)
 * @param arrivalNanos {@link System#nanoTime()} when the API received the request (an HTTP request's headers, a gRPC
 *                     call's start), before its body was read, its prompt rendered and tokenized and it was admitted:
 *                     where TTFT and E2E start (docs/metrics.md)
 * @param stopTokenIds token ids that end the text as a stop string does (finish reason stop, the token's own text not
 *                     part of it): the end-of-turn token of the chat format the gateway chose itself (a special token
 *                     is not in the decoded text, so a stop string could not see it)
 */
public record ServingRequest(String requestId, String tenant, GenerationRequest generation, List<String> stop,
                             long arrivalNanos, Set<Integer> stopTokenIds) {
    /** Stop strings per request: what gateway.proto allows (the OpenAI API allows 4). */
    public static final int MAX_STOP = 16;
    /**
     * Length of one stop string. Matching holds back text that could start a stop string and tests each candidate
     * suffix, quadratic in its length per token: the cap keeps a hostile stop string from stalling the engine.
     */
    public static final int MAX_STOP_CHARS = 256;

    /** A request received now. */
    public ServingRequest(String requestId, String tenant, GenerationRequest generation, List<String> stop) {
        this(requestId, tenant, generation, stop, System.nanoTime());
    }

    /** A request that only its own stop strings (and the model's EOS) end. */
    public ServingRequest(String requestId, String tenant, GenerationRequest generation, List<String> stop,
                          long arrivalNanos) {
        this(requestId, tenant, generation, stop, arrivalNanos, Set.of());
    }

    public ServingRequest {
        stop = List.copyOf(stop);
        stopTokenIds = Set.copyOf(stopTokenIds);
        String problem = stopProblem(stop, MAX_STOP);
        if (problem != null) {
            throw new IllegalArgumentException("stop " + problem);
        }
    }

    /** What is wrong with {@code stop} under a limit of {@code max} strings, or null when it is fine. */
    public static String stopProblem(List<String> stop, int max) {
        if (stop.size() > max) {
            return "takes at most " + max + " strings, got " + stop.size();
        }
        for (int i = 0; i < stop.size(); i++) {
            String s = stop.get(i);
            if (s.isEmpty()) {
                return "strings must not be empty (entry " + i + " is)";
            }
            if (s.length() > MAX_STOP_CHARS) {
                return "strings may have at most " + MAX_STOP_CHARS + " characters (entry " + i + " has " + s.length()
                        + ")";
            }
        }
        return null;
    }
}
