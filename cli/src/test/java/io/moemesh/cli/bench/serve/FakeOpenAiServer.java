package io.moemesh.cli.bench.serve;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A tiny OpenAI-compatible server on loopback (a real socket): {@code GET /v1/models} and streaming
 * {@code POST /v1/completions} that answers {@code max_tokens} chunks, a usage chunk and {@code [DONE]}. Every
 * {@code rejectEvery}-th completion request gets 429 with Retry-After. Prompt tokens are counted as words + 1.
 */
final class FakeOpenAiServer implements AutoCloseable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final HttpServer server;
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private final String apiKey;
    private final int maxModelLen;
    private final int rejectEvery;
    private final AtomicInteger completions = new AtomicInteger();
    final List<JsonNode> bodies = new CopyOnWriteArrayList<>();
    final List<String> authorizations = new CopyOnWriteArrayList<>();

    FakeOpenAiServer(String apiKey, int maxModelLen, int rejectEvery) throws IOException {
        this.apiKey = apiKey;
        this.maxModelLen = maxModelLen;
        this.rejectEvery = rejectEvery;
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(executor);
        server.createContext("/v1/models", this::models);
        server.createContext("/v1/completions", this::completions);
        server.start();
    }

    String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    private boolean authorized(HttpExchange ex) throws IOException {
        String auth = ex.getRequestHeaders().getFirst("Authorization");
        if (apiKey == null || ("Bearer " + apiKey).equals(auth)) {
            return true;
        }
        send(ex, 401, "{\"error\":{\"message\":\"invalid api key\",\"type\":\"invalid_request_error\"}}");
        return false;
    }

    private void models(HttpExchange ex) throws IOException {
        if (authorized(ex)) {
            send(ex, 200, "{\"object\":\"list\",\"data\":[{\"id\":\"fake-moe\",\"object\":\"model\","
                    + "\"owned_by\":\"test\",\"max_model_len\":" + maxModelLen + "}]}");
        }
    }

    private void completions(HttpExchange ex) throws IOException {
        JsonNode body = JSON.readTree(ex.getRequestBody().readAllBytes());
        if (!authorized(ex)) {
            return;
        }
        bodies.add(body);
        authorizations.add(ex.getRequestHeaders().getFirst("Authorization"));
        if (rejectEvery > 0 && completions.incrementAndGet() % rejectEvery == 0) {
            ex.getResponseHeaders().add("Retry-After", "1");
            send(ex, 429, "{\"error\":{\"message\":\"overloaded\",\"type\":\"rate_limit_error\"}}");
            return;
        }
        int maxTokens = body.path("max_tokens").asInt();
        int promptTokens = body.path("prompt").asString().strip().split("\\s+").length + 1;
        ex.getResponseHeaders().add("Content-Type", "text/event-stream");
        ex.sendResponseHeaders(200, 0);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(": keep-alive comment\n\n".getBytes(StandardCharsets.UTF_8));
            String head = "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"fake-moe\",";
            for (int i = 0; i < maxTokens; i++) {
                String finish = i == maxTokens - 1 ? "\"length\"" : "null";
                event(out, head + "\"choices\":[{\"index\":0,\"text\":\" t" + i + "\",\"logprobs\":null,"
                        + "\"finish_reason\":" + finish + "}],\"usage\":null}");
            }
            event(out, head + "\"choices\":[],\"usage\":{\"prompt_tokens\":" + promptTokens
                    + ",\"completion_tokens\":" + maxTokens + ",\"total_tokens\":" + (promptTokens + maxTokens) + "}}");
            event(out, "[DONE]");
        }
    }

    private static void event(OutputStream out, String data) throws IOException {
        out.write(("data: " + data + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static void send(HttpExchange ex, int status, String json) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().add("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
