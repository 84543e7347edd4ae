package io.moemesh.cli.bench.serve;

/** A gateway API that streams completions: the OpenAI-compatible HTTP API or the gRPC API. */
public interface StreamingBackend extends AutoCloseable {

    /** How every request of a run is sampled. */
    record RequestSpec(String model, double temperature, boolean ignoreEos) {
    }

    /** The served model; {@code model} null or empty = the server's first (default) model. */
    ModelDescription describe(String model);

    /**
     * Sends one streaming completion and times it; failures (status codes, broken streams) are failed outcomes,
     * not exceptions. Interrupting the calling thread cancels the request.
     */
    RequestOutcome send(RequestSpec spec, BenchPrompt prompt) throws InterruptedException;

    @Override
    void close();
}
