package io.moemesh.gateway.support;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** Greedy completions of token-id prompts over a gateway's public HTTP API, and its Prometheus counters. */
public final class Completions {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private final String model;
    private final int port;
    private final int managementPort;

    public Completions(String model, int port, int managementPort) {
        this.model = model;
        this.port = port;
        this.managementPort = managementPort;
    }

    /** Text and usage.prompt_tokens_details.cached_tokens of one completion. */
    public record Result(String text, int cached) {
    }

    /** {@code n} token ids of the tiny models' vocabulary (512), never BOS (0) or EOS (1), drawn from {@code seed}. */
    public static int[] prompt(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 2 + r.nextInt(510);
        }
        return ids;
    }

    public Result complete(int[] prompt, int maxTokens) throws Exception {
        String body = JSON.writeValueAsString(Map.of("model", model, "prompt", prompt, "max_tokens", maxTokens,
                "temperature", 0));
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                        + "/v1/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode json = JSON.readTree(r.body());
        return new Result(json.at("/choices/0/text").stringValue(),
                json.at("/usage/prompt_tokens_details/cached_tokens").intValue());
    }

    public double metric(String name) throws Exception {
        String body = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/prometheus")).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = Pattern.compile("(?m)^" + name + "(?:\\{[^}]*})? (\\S+)$").matcher(body);
        assertThat(m.find()).as("%s in%n%s", name, body).isTrue();
        return Double.parseDouble(m.group(1));
    }
}
