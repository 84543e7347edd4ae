package io.moemesh.cli.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;

/**
 * The TTFT bench's view of one gateway: a prompt's time to first token over the gateway's gRPC {@code Generate}
 * stream (one greedy token), with the {@code cached_prompt_tokens} it reports, and the write-backs to the
 * kvcache-service settled between requests (read from the gateway's Prometheus endpoint).
 */
final class KvTtftClient implements AutoCloseable {
    private static final String QUEUED = "moemesh_gateway_kvcache_writeback_queued_blocks";
    private static final String[] SETTLED = {"moemesh_gateway_kvcache_writeback_blocks_total",
        "moemesh_gateway_kvcache_writeback_dropped_blocks_total", "moemesh_gateway_kvcache_writeback_failed_blocks_total",
        "moemesh_gateway_kvcache_writeback_declined_blocks_total"};
    private static final String DROPPED = SETTLED[1];

    /** One request: submit → first token, and how much of its prompt the gateway served from cached KV. */
    record Outcome(double ttftMillis, int cachedTokens) {
    }

    private final ManagedChannel channel;
    private final HttpClient http = HttpClient.newHttpClient();
    private final int managementPort;

    KvTtftClient(String grpcEndpoint, int managementPort) {
        String[] hp = grpcEndpoint.split(":");
        this.channel = NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext().build();
        this.managementPort = managementPort;
    }

    Outcome generate(int[] prompt) {
        PromptIds.Builder ids = PromptIds.newBuilder();
        for (int id : prompt) {
            ids.addTokenIds(id);
        }
        GenerateRequest req = GenerateRequest.newBuilder().setPromptIds(ids)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(1).setIgnoreEos(true)).build();
        long t0 = System.nanoTime();
        Iterator<GenerateResponse> it = GatewayServiceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(10, TimeUnit.MINUTES).generate(req);
        long first = 0;
        int cached = -1;
        while (it.hasNext()) {
            GenerateResponse r = it.next();
            if (r.hasError()) {
                throw new IllegalStateException("the bench request failed: " + r.getError().getMessage());
            }
            if (first == 0 && r.getTokenIdsCount() > 0) {
                first = System.nanoTime();
            }
            if (r.hasUsage()) {
                cached = r.getUsage().getCachedPromptTokens();
            }
        }
        if (first == 0) {
            throw new IllegalStateException("the gateway returned no token for a " + prompt.length + "-token prompt");
        }
        return new Outcome((first - t0) / 1e6, cached);
    }

    /**
     * Waits until the write-backs of the requests so far are settled: none queued, and the settled count
     * (acknowledged, dropped, failed, declined) moved past {@code settledBefore} and stopped moving.
     *
     * @return the settled count now
     */
    double awaitWriteBacks(double settledBefore, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        double last = -1;
        while (System.nanoTime() < deadline) {
            String body = scrape();
            double settled = settled(body);
            if (PrefetchWorkload.value(body, QUEUED) == 0 && settled > settledBefore && settled == last) {
                return settled;
            }
            last = settled;
            Thread.sleep(200);
        }
        throw new IllegalStateException("the gateway's write-backs did not settle within " + timeout.toSeconds()
                + " s");
    }

    /** Blocks acknowledged, dropped, failed or declined by the write-back so far. */
    double settled() throws IOException, InterruptedException {
        return settled(scrape());
    }

    /** Blocks dropped because the write-back queue was full. */
    double dropped() throws IOException, InterruptedException {
        return PrefetchWorkload.value(scrape(), DROPPED);
    }

    private static double settled(String body) {
        double sum = 0;
        for (String name : SETTLED) {
            sum += PrefetchWorkload.value(body, name);
        }
        return sum;
    }

    private String scrape() throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/prometheus")).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("GET /actuator/prometheus on port " + managementPort + ": HTTP " + r.statusCode());
        }
        return r.body();
    }

    @Override
    public void close() throws InterruptedException {
        http.close();
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
}
