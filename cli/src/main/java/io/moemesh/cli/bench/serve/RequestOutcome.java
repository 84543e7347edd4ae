package io.moemesh.cli.bench.serve;

/**
 * What one request measured on the client, as vLLM's {@code RequestFuncOutput}
 * (vllm/benchmarks/lib/endpoint_request_func.py). Times are nanoseconds.
 *
 * @param success      vLLM: true when at least one streamed chunk arrived and the stream ended normally
 * @param error        why it failed (HTTP status, gRPC status, timeout); empty on success
 * @param ttftNanos    time to first token: request sent → first chunk carrying choices (text may be empty)
 * @param latencyNanos end-to-end latency (E2EL): request sent → the last chunk carrying choices
 * @param itlNanos     inter-token latencies: the gaps between consecutive chunks carrying choices
 * @param promptTokens input tokens (the server's usage.prompt_tokens when reported, else the client's count)
 * @param outputTokens output tokens (the server's usage.completion_tokens when reported, else the chunk count)
 */
public record RequestOutcome(boolean success, String error, long ttftNanos, long latencyNanos, long[] itlNanos,
                             int promptTokens, int outputTokens) {

    public static RequestOutcome failed(String error, int promptTokens) {
        return new RequestOutcome(false, error, 0, 0, new long[0], promptTokens, 0);
    }

    /**
     * Time per output token after the first: {@code (latency − ttft) / (output_tokens − 1)} (vLLM's
     * {@code calculate_metrics}); 0 when at most one token came back ("we regard tpot as 0 for goodput").
     */
    public double tpotNanos() {
        return outputTokens > 1 ? (double) (latencyNanos - ttftNanos) / (outputTokens - 1) : 0;
    }
}
