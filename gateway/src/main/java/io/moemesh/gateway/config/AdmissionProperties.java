package io.moemesh.gateway.config;

import io.moemesh.gateway.serving.AdmissionControl;
import java.time.Duration;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Queue, rate, size and time limits of the public APIs ({@code moemesh.gateway.admission.*}, environment variables
 * {@code MOEMESH_GATEWAY_ADMISSION_*}); part of {@link GatewayProperties}.
 *
 * @param maxWaiting                requests waiting to start beyond which new ones get 429 / RESOURCE_EXHAUSTED
 *                                  (at least 1); a request counts from its admission, so concurrent ones cannot
 *                                  all take the last place
 * @param tenantRequestsPerSecond   per-tenant request rate (token bucket), a finite number ≥ 0; 0 (the default)
 *                                  disables the limit. A completions or chat request and a gRPC Generate or
 *                                  Tokenize call count when they arrive, right after their authentication and
 *                                  before their body is read, whether they are then served or refused (a gRPC call
 *                                  once, however many messages it sends): a tenant past its rate gets 429 /
 *                                  RESOURCE_EXHAUSTED (Retry-After; over gRPC the description ends "(retry after N
 *                                  s)") without its body being read, parsed or tokenized, so a gRPC call of it holds
 *                                  none of {@code maxHeldRequestBytes}
 * @param tenantBurst               per-tenant bucket size: requests a tenant may send at once, a finite number ≥ 1
 * @param maxPromptTokens           longest prompt accepted; 0 = the model's context (at most context − 1 either
 *                                  way: one token must remain to generate)
 * @param maxNewTokens              largest max_tokens accepted, and the cap of a request that sets none (which
 *                                  then ends with finish reason length); 0 = the model's context, a cap that
 *                                  refuses no value by itself: what a max_tokens the prompt leaves no room for
 *                                  gets is the API's rule, 400 context_length_exceeded over HTTP (as OpenAI and
 *                                  vLLM answer), an end at the context with finish reason length over gRPC
 *                                  (gateway.proto)
 * @param maxRequestBytes           largest HTTP body (also without Content-Length: counted while read) and gRPC
 *                                  message accepted (413 / RESOURCE_EXHAUSTED), 1 to 2^31 − 9 (a body is
 *                                  held in one byte array)
 * @param largeRequestBytes         an HTTP body or gRPC Generate / Tokenize message above this many bytes is
 *                                  large: only {@code maxConcurrentLargeRequests} are parsed and tokenized at once
 * @param maxConcurrentLargeRequests large requests in intake at once; more get 429 + Retry-After /
 *                                  RESOURCE_EXHAUSTED at once, without waiting
 * @param maxChatMessages           messages a chat may have (400 naming {@code messages}, INVALID_ARGUMENT naming
 *                                  {@code chat.messages}), checked while the body is read
 * @param maxStreamBacklogBytes     event text an SSE stream may have waiting beyond what the socket holds
 *                                  (characters, about bytes), or bytes of gRPC Generate messages queued while the
 *                                  call is not ready; past it the client is taken as not reading and the request is
 *                                  cancelled (a gRPC call's stream is reset, dropping what it queued), so a stalled
 *                                  client holds at most this much memory
 * @param requestReadTimeout        how long a request may take to arrive once it has begun, > 0: an HTTP body, of
 *                                  any size, from the end of its headers to its last byte (408 and the connection
 *                                  closed at the deadline, its permit given back; the body is received without a
 *                                  worker thread, so a slow client never holds one; the container's per-read
 *                                  timeout bounds each wait for bytes, not the whole body); a call of the public
 *                                  gRPC API (Generate, Tokenize, ModelInfo), from its start to its half-close, until
 *                                  which gRPC holds its message's bytes (closed DEADLINE_EXCEEDED naming this
 *                                  setting, its stream reset). A slow client cannot hold a permit, a request's bytes
 *                                  or a connection longer than this
 * @param maxGrpcCallsPerConnection calls a client connection may have open at once on the public gRPC port
 *                                  (HTTP/2 MAX_CONCURRENT_STREAMS); further calls wait in the client until one
 *                                  ends, none is refused. 0 (the default) = the larger of 2048 and
 *                                  {@code maxWaiting} + moemesh.gateway.max-running (set by {@link
 *                                  GatewayProperties}); else at least {@code maxWaiting} + moemesh.gateway.max-running
 *                                  (checked at startup, {@link GatewayProperties}): the requests the gateway holds at
 *                                  once, so a client on one connection past them is answered RESOURCE_EXHAUSTED by
 *                                  the admission instead of waiting in its own client unanswered; it bounds the calls
 *                                  one connection can leave open
 * @param maxHeldRequestBytes       request bytes the public gRPC port's calls may hold together before their
 *                                  half-close (gRPC reads a call's message as it arrives and keeps it until then,
 *                                  for up to {@code requestReadTimeout}, whatever the connection's flow control): a
 *                                  call whose bytes would pass it is closed RESOURCE_EXHAUSTED naming this setting
 *                                  and its stream reset at once (logged, counted in
 *                                  moemesh_gateway_grpc_held_request_resets_total). The HTTP API's bodies being
 *                                  received (read as they arrive, without a worker, until whole) have a budget of
 *                                  their own of the same size: a body whose bytes would pass it is 429 naming this
 *                                  setting. 0 (the default) = 32 ×
 *                                  {@code maxConcurrentLargeRequests} × {@code maxRequestBytes} (256 MiB at the
 *                                  defaults: a legitimate burst of calls waiting for the executor between their
 *                                  message and half-close holds them too, so room for far more than the large
 *                                  permits); else at least {@code maxRequestBytes}, so one largest message fits
 */
public record AdmissionProperties(
        @DefaultValue("1024") int maxWaiting,
        @DefaultValue("0") double tenantRequestsPerSecond,
        @DefaultValue("20") double tenantBurst,
        @DefaultValue("0") int maxPromptTokens,
        @DefaultValue("0") int maxNewTokens,
        @DefaultValue("4194304") int maxRequestBytes,
        @DefaultValue("262144") int largeRequestBytes,
        @DefaultValue("2") int maxConcurrentLargeRequests,
        @DefaultValue("2048") int maxChatMessages,
        @DefaultValue("1048576") long maxStreamBacklogBytes,
        @DefaultValue("30s") Duration requestReadTimeout,
        @DefaultValue("0") int maxGrpcCallsPerConnection,
        @DefaultValue("0") long maxHeldRequestBytes) {

    /** The largest body one byte array can hold on every JVM (the JDK's own soft limit for array lengths). */
    static final int MAX_REQUEST_BYTES = Integer.MAX_VALUE - 8;

    public AdmissionProperties {
        String prefix = "moemesh.gateway.admission.";
        if (maxWaiting < 1) {
            // 0 would answer every request 429 while readiness says the gateway serves.
            throw new IllegalArgumentException(prefix + "max-waiting must be ≥ 1, got " + maxWaiting);
        }
        if (maxRequestBytes < 1 || maxRequestBytes > MAX_REQUEST_BYTES) {
            // A body is held in one byte array: the JVM refuses arrays much past this (an Error, a 500).
            throw new IllegalArgumentException(prefix + "max-request-bytes must be between 1 and " + MAX_REQUEST_BYTES
                    + ", got " + maxRequestBytes);
        }
        if (largeRequestBytes < 1) {
            throw new IllegalArgumentException(prefix + "large-request-bytes must be ≥ 1, got " + largeRequestBytes);
        }
        if (maxConcurrentLargeRequests < 1) {
            throw new IllegalArgumentException(prefix + "max-concurrent-large-requests must be ≥ 1, got "
                    + maxConcurrentLargeRequests);
        }
        if (maxStreamBacklogBytes < 1) {
            throw new IllegalArgumentException(prefix + "max-stream-backlog-bytes must be ≥ 1, got "
                    + maxStreamBacklogBytes);
        }
        if (requestReadTimeout == null || requestReadTimeout.isNegative() || requestReadTimeout.isZero()) {
            throw new IllegalArgumentException(prefix + "request-read-timeout must be a positive duration, got "
                    + requestReadTimeout);
        }
        if (maxGrpcCallsPerConnection < 0) {
            throw new IllegalArgumentException(prefix + "max-grpc-calls-per-connection must be ≥ 0 (0 = the larger of "
                    + "2048 and max-waiting + moemesh.gateway.max-running), got " + maxGrpcCallsPerConnection);
        }
        if (maxHeldRequestBytes == 0) {
            maxHeldRequestBytes = 32L * maxConcurrentLargeRequests * maxRequestBytes;
        } else if (maxHeldRequestBytes < maxRequestBytes) {
            throw new IllegalArgumentException(prefix + "max-held-request-bytes must be 0 (32 × "
                    + "max-concurrent-large-requests × max-request-bytes) or at least " + prefix
                    + "max-request-bytes (" + maxRequestBytes + "), so that one largest message fits, got "
                    + maxHeldRequestBytes);
        }
        if (maxChatMessages < 1) {
            throw new IllegalArgumentException(prefix + "max-chat-messages must be ≥ 1, got " + maxChatMessages);
        }
        AdmissionControl.checkRateLimit(tenantRequestsPerSecond, tenantBurst, prefix + "tenant-requests-per-second",
                prefix + "tenant-burst");
        if (maxPromptTokens < 0 || maxNewTokens < 0) {
            throw new IllegalArgumentException(prefix + "max-prompt-tokens and max-new-tokens must be ≥ 0 (0 = the"
                    + " model's context), got " + maxPromptTokens + " and " + maxNewTokens);
        }
    }

    /** These settings with {@code calls} as max-grpc-calls-per-connection (what 0 stands for, once it is known). */
    AdmissionProperties withMaxGrpcCallsPerConnection(int calls) {
        return new AdmissionProperties(maxWaiting, tenantRequestsPerSecond, tenantBurst, maxPromptTokens,
                maxNewTokens, maxRequestBytes, largeRequestBytes, maxConcurrentLargeRequests, maxChatMessages,
                maxStreamBacklogBytes, requestReadTimeout, calls, maxHeldRequestBytes);
    }
}
