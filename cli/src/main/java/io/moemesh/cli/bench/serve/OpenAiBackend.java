package io.moemesh.cli.bench.serve;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.OptionalInt;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * The gateway's OpenAI-compatible API: {@code POST /v1/completions} with {@code stream: true} and
 * {@code stream_options.include_usage}, read as server-sent events and timed as vLLM's
 * {@code async_request_openai_completions} does (a chunk counts when its {@code choices} is non-empty; the usage
 * chunk gives the token counts). {@code GET /v1/models} names the model and, when the entry carries it
 * ({@code max_model_len} as vLLM reports it, or {@code max_position_embeddings} / {@code context_length}), the
 * context length.
 */
public final class OpenAiBackend implements StreamingBackend {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String[] CONTEXT_FIELDS = {"max_model_len", "max_position_embeddings", "context_length",
        "context_window", "max_context_length"};
    private static final int ERROR_BODY_LIMIT = 300;

    private final URI base;
    private final String apiKey;
    private final HttpClient client;

    /** @param apiKey sent as {@code Authorization: Bearer}; null or empty = none */
    public OpenAiBackend(URI base, String apiKey) {
        this.base = base;
        this.apiKey = apiKey == null || apiKey.isEmpty() ? null : apiKey;
        this.client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
    }

    @Override
    public ModelDescription describe(String model) {
        HttpResponse<String> r;
        try {
            r = client.send(request(base.resolve(base.getPath() + "/models")).GET().build(),
                    HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalArgumentException("--endpoint " + base + ": GET /v1/models failed: "
                    + ConnectionFailures.describe(e));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        if (r.statusCode() != 200) {
            throw new IllegalArgumentException("--endpoint " + base + ": GET /v1/models answered HTTP " + r.statusCode()
                    + (r.statusCode() == 401 ? " (missing or wrong --api-key)" : "") + ": " + truncate(r.body()));
        }
        JsonNode data;
        try {
            data = JSON.readTree(r.body()).path("data");
        } catch (JacksonException e) {
            throw new IllegalArgumentException("--endpoint " + base + ": GET /v1/models is not JSON");
        }
        JsonNode chosen = null;
        for (JsonNode m : data) {
            if (chosen == null && (model == null || model.isEmpty()) || m.path("id").asString("").equals(model)) {
                chosen = m;
            }
        }
        if (chosen == null) {
            throw new IllegalArgumentException("--model " + model + ": the server does not list it in GET /v1/models");
        }
        OptionalInt context = OptionalInt.empty();
        for (String f : CONTEXT_FIELDS) {
            if (chosen.path(f).canConvertToInt() && context.isEmpty()) {
                context = OptionalInt.of(chosen.path(f).asInt());
            }
        }
        return new ModelDescription(chosen.path("id").asString(), context, OptionalInt.empty(), OptionalInt.empty(),
                Set.of());
    }

    @Override
    public RequestOutcome send(RequestSpec spec, BenchPrompt prompt) throws InterruptedException {
        if (prompt.text() == null) {
            throw new IllegalArgumentException("the OpenAI backend sends text prompts");
        }
        ObjectNode body = JSON.createObjectNode();
        body.put("model", spec.model());
        body.put("prompt", prompt.text());
        body.put("max_tokens", prompt.maxTokens());
        body.put("temperature", spec.temperature());
        body.put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        if (spec.ignoreEos()) {
            body.put("ignore_eos", true); // vLLM's extension: generate exactly max_tokens tokens
        }
        HttpRequest request = request(base.resolve(base.getPath() + "/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body), StandardCharsets.UTF_8))
                .build();
        long start = System.nanoTime();
        StreamTimer timer = new StreamTimer(start);
        HttpResponse<InputStream> response;
        try {
            response = client.send(request, HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException e) {
            return RequestOutcome.failed("connection: " + ConnectionFailures.describe(e), prompt.promptTokens());
        }
        try (InputStream in = response.body()) {
            if (response.statusCode() != 200) {
                String retry = response.headers().firstValue("Retry-After").map(v -> ", Retry-After " + v).orElse("");
                String text = new String(in.readNBytes(ERROR_BODY_LIMIT), StandardCharsets.UTF_8);
                return RequestOutcome.failed("HTTP " + response.statusCode() + retry + ": " + truncate(text),
                        prompt.promptTokens());
            }
            return readStream(new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8)), timer, prompt);
        } catch (IOException e) {
            if (Thread.currentThread().isInterrupted()) {
                throw new InterruptedException("cancelled");
            }
            return RequestOutcome.failed("stream broken: " + ConnectionFailures.describe(e), prompt.promptTokens());
        }
    }

    /** Reads SSE lines: {@code data: {json}} chunks until {@code data: [DONE]} or the end of the body. */
    static RequestOutcome readStream(BufferedReader lines, StreamTimer timer, BenchPrompt prompt) throws IOException {
        int promptTokens = prompt.promptTokens();
        int outputTokens = -1;
        String line;
        while ((line = lines.readLine()) != null) {
            long now = System.nanoTime();
            if (!line.startsWith("data:")) {
                continue; // blank separators, ": comments" (keep-alives), event:/id: fields
            }
            String payload = line.substring(5).strip();
            if (payload.equals("[DONE]")) {
                break;
            }
            JsonNode chunk;
            try {
                chunk = JSON.readTree(payload);
            } catch (JacksonException e) {
                return RequestOutcome.failed("bad SSE chunk: " + truncate(payload), promptTokens);
            }
            if (chunk.has("error")) {
                return RequestOutcome.failed("stream error: " + truncate(chunk.get("error").toString()), promptTokens);
            }
            JsonNode choices = chunk.path("choices");
            if (choices.isArray() && !choices.isEmpty()) {
                timer.onChunk(now);
            }
            JsonNode usage = chunk.path("usage");
            if (usage.isObject()) {
                outputTokens = usage.path("completion_tokens").asInt(outputTokens);
                promptTokens = usage.path("prompt_tokens").asInt(promptTokens);
            }
        }
        return timer.finish(promptTokens, outputTokens >= 0 ? outputTokens : timer.chunks());
    }

    private HttpRequest.Builder request(URI uri) {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri);
        if (apiKey != null) {
            b.header("Authorization", "Bearer " + apiKey);
        }
        return b;
    }

    private static String truncate(String s) {
        String one = s.replaceAll("\\s+", " ").strip();
        return one.length() > ERROR_BODY_LIMIT ? one.substring(0, ERROR_BODY_LIMIT) + "…" : one;
    }

    @Override
    public void close() {
        client.shutdownNow();
    }
}
