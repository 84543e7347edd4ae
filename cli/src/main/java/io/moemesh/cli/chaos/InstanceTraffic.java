package io.moemesh.cli.chaos;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.OptionalDouble;

/**
 * How many ExpertBatch messages an expert-service process has computed, from its Prometheus endpoint
 * ({@code moemesh_expert_batch_tokens_count}, one count per message). A restarted process starts at 0, so its
 * first count above 0 is the moment the gateway uses it again.
 */
final class InstanceTraffic {
    private static final String METRIC = "moemesh_expert_batch_tokens_count";
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    /** The count, or empty when the endpoint does not answer (the process is down or still starting). */
    OptionalDouble batches(int managementPort) {
        try {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + managementPort + "/actuator/prometheus"))
                    .timeout(Duration.ofSeconds(2)).GET().build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) {
                return OptionalDouble.empty();
            }
            return OptionalDouble.of(sum(r.body()));
        } catch (IOException e) {
            return OptionalDouble.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return OptionalDouble.empty();
        }
    }

    /** Sum of the metric over its label sets in a Prometheus text exposition. */
    static double sum(String exposition) {
        double total = 0;
        for (String line : exposition.split("\n")) {
            if (line.startsWith(METRIC + " ") || line.startsWith(METRIC + "{")) {
                total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1).strip());
            }
        }
        return total;
    }
}
