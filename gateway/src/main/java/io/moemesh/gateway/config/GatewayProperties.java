package io.moemesh.gateway.config;

import java.nio.file.Path;
import java.time.Duration;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Settings of the gateway ({@code moemesh.gateway.*}, or environment variables {@code MOEMESH_GATEWAY_*}: the
 * same under {@code moemesh up} and under Kubernetes).
 *
 * @param modelDir              Hugging Face model directory (dense weights, tokenizer); required
 * @param grpcHost              address the public gRPC API binds (loopback by default)
 * @param grpcPort              public gRPC port; 0 picks a free one
 * @param placementFile         JSON of router.v1.Placement; empty runs every expert in-process (monolithic)
 * @param placementPollInterval how often the placement file is checked for a new epoch
 * @param kvCacheTokens         KV positions the paged cache holds over all sequences
 * @param stepTokenBudget       tokens per engine step (decode tokens plus prefill chunks)
 * @param maxRunning            sequences decoding at once
 * @param nativeCacheDir        where native libraries are unpacked (a read-only root filesystem must work)
 * @param dispatch              expert-service data path settings
 * @param admission             queue, rate and size limits of the public APIs
 * @param apiKeysFile           "KEY TENANT" lines; with apiKeys unset and no file, auth is off (local mode)
 * @param apiKeys               "KEY:TENANT,KEY:TENANT" (e.g. from the environment: MOEMESH_GATEWAY_API_KEYS)
 */
@ConfigurationProperties("moemesh.gateway")
public record GatewayProperties(
        Path modelDir,
        @DefaultValue("127.0.0.1") String grpcHost,
        @DefaultValue("9000") int grpcPort,
        Path placementFile,
        @DefaultValue("500ms") Duration placementPollInterval,
        @DefaultValue("65536") int kvCacheTokens,
        @DefaultValue("512") int stepTokenBudget,
        @DefaultValue("256") int maxRunning,
        @DefaultValue("67108864") int maxInboundMessageBytes,
        @DefaultValue("30s") Duration shutdownGrace,
        Path nativeCacheDir,
        @DefaultValue Dispatch dispatch,
        @DefaultValue Admission admission,
        Path apiKeysFile,
        String apiKeys) {

    /**
     * @param maxWaiting                requests waiting to start beyond which new ones get 429 / RESOURCE_EXHAUSTED
     * @param tenantRequestsPerSecond   per-tenant request rate (token bucket); 0 disables
     * @param tenantBurst               per-tenant bucket size
     * @param maxPromptTokens           longest prompt accepted; 0 = the model's context (at most context − 1 either
     *                                  way: one token must remain to generate)
     * @param maxNewTokens              largest max_tokens accepted; 0 = the model's context
     * @param maxRequestBytes           largest HTTP body (also without Content-Length: counted while read) and gRPC
     *                                  message accepted (413 / RESOURCE_EXHAUSTED)
     * @param largeRequestBytes         an HTTP body or gRPC Generate / Tokenize message above this many bytes is
     *                                  large: only {@code maxConcurrentLargeRequests} are parsed and tokenized at once
     * @param maxConcurrentLargeRequests large requests in intake at once; more get 429 + Retry-After /
     *                                  RESOURCE_EXHAUSTED at once, without waiting
     * @param maxChatMessages           messages a chat may have (400 naming {@code messages}, INVALID_ARGUMENT naming
     *                                  {@code chat.messages}), checked while the body is read
     */
    public record Admission(
            @DefaultValue("1024") int maxWaiting,
            @DefaultValue("0") double tenantRequestsPerSecond,
            @DefaultValue("20") double tenantBurst,
            @DefaultValue("0") int maxPromptTokens,
            @DefaultValue("0") int maxNewTokens,
            @DefaultValue("4194304") int maxRequestBytes,
            @DefaultValue("262144") int largeRequestBytes,
            @DefaultValue("2") int maxConcurrentLargeRequests,
            @DefaultValue("2048") int maxChatMessages) {

        public Admission {
            String prefix = "moemesh.gateway.admission.";
            if (maxRequestBytes < 1) {
                throw new IllegalArgumentException(prefix + "max-request-bytes must be ≥ 1, got " + maxRequestBytes);
            }
            if (largeRequestBytes < 1) {
                throw new IllegalArgumentException(prefix + "large-request-bytes must be ≥ 1, got " + largeRequestBytes);
            }
            if (maxConcurrentLargeRequests < 1) {
                throw new IllegalArgumentException(prefix + "max-concurrent-large-requests must be ≥ 1, got "
                        + maxConcurrentLargeRequests);
            }
            if (maxChatMessages < 1) {
                throw new IllegalArgumentException(prefix + "max-chat-messages must be ≥ 1, got " + maxChatMessages);
            }
            if (maxPromptTokens < 0 || maxNewTokens < 0) {
                throw new IllegalArgumentException(prefix + "max-prompt-tokens and max-new-tokens must be ≥ 0 (0 = the"
                        + " model's context), got " + maxPromptTokens + " and " + maxNewTokens);
            }
        }
    }

    /**
     * @param stepDeadline        a layer's expert calls, retries included, must finish within this
     * @param maxConcurrentCalls  bulkhead: calls in flight per instance
     * @param failureRateThreshold circuit breaker: percent of failed calls that opens it
     * @param openStateWait       circuit breaker: how long an open breaker rejects calls before probing
     * @param wireDtype           f32 (exact, default) or bf16 (lossy, half the bytes)
     */
    public record Dispatch(
            @DefaultValue("10s") Duration stepDeadline,
            @DefaultValue("64") int maxConcurrentCalls,
            @DefaultValue("50") float failureRateThreshold,
            @DefaultValue("5s") Duration openStateWait,
            @DefaultValue("f32") String wireDtype) {
    }

    public GatewayProperties {
        if (modelDir == null) {
            throw new IllegalArgumentException("moemesh.gateway.model-dir (MOEMESH_GATEWAY_MODEL_DIR) is required");
        }
        if (kvCacheTokens < 16 || stepTokenBudget < 1 || maxRunning < 1) {
            throw new IllegalArgumentException("moemesh.gateway: kv-cache-tokens ≥ 16, step-token-budget ≥ 1 and "
                    + "max-running ≥ 1 are required");
        }
    }
}
