package io.moemesh.cli.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.cli.bench.mesh.TokenCountingStream;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** One decode workload through a running mesh, with the expert services' and the gateway's counters around it. */
final class PrefetchWorkload {

    /** Counter deltas over the workload (Σ over the expert instances) and its decode rate. */
    record Result(long misses, long hits, long prefetchHits, long prefetchWasted, long hintsSent, double recall,
                  double tokensPerSecond) {
    }

    private PrefetchWorkload() {
    }

    /** Fixed pseudo-random prompts (seed 42), token 0 first, ids in [2, min(vocab, 512)). */
    static int[][] prompts(int n, int length, int vocab) {
        SplittableRandom r = new SplittableRandom(42);
        int[][] out = new int[n][length];
        for (int[] p : out) {
            p[0] = 0;
            for (int i = 1; i < length; i++) {
                p[i] = 2 + r.nextInt(Math.max(1, Math.min(vocab, 512) - 2));
            }
        }
        return out;
    }

    static Result run(String gateway, List<Integer> expertManagementPorts, int gatewayManagementPort, int[][] prompts,
                      int tokens) throws Exception {
        try (HttpClient http = HttpClient.newHttpClient()) {
            long[] before = expertCounters(http, expertManagementPorts);
            double[] g0 = gatewayCounters(http, gatewayManagementPort);
            String[] hp = gateway.split(":");
            ManagedChannel ch = NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext().build();
            double rate;
            try {
                rate = generate(ch, prompts, tokens);
            } finally {
                ch.shutdownNow();
            }
            long[] after = expertCounters(http, expertManagementPorts);
            double[] g1 = gatewayCounters(http, gatewayManagementPort);
            double trueExperts = g1[0] - g0[0];
            return new Result(after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3],
                    (long) (g1[2] - g0[2]), trueExperts == 0 ? 0 : (g1[1] - g0[1]) / trueExperts, rate);
        }
    }

    /** {misses, hits, prefetch hits, prefetch wasted} summed over the instances. */
    private static long[] expertCounters(HttpClient http, List<Integer> ports) throws IOException, InterruptedException {
        long[] sum = new long[4];
        String[] names = {"moemesh_expert_resident_misses_total", "moemesh_expert_resident_hits_total",
                "moemesh_expert_prefetch_hits_total", "moemesh_expert_prefetch_wasted_total"};
        for (int port : ports) {
            String body = scrape(http, port);
            for (int i = 0; i < names.length; i++) {
                sum[i] += (long) value(body, names[i]);
            }
        }
        return sum;
    }

    /** {lookahead true experts, lookahead hits, prefetch hints}; zeros when prefetch is off (no such metrics). */
    private static double[] gatewayCounters(HttpClient http, int port) throws IOException, InterruptedException {
        String body = scrape(http, port);
        return new double[] {value(body, "moemesh_gateway_lookahead_true_experts_total"),
                value(body, "moemesh_gateway_lookahead_hits_total"), value(body, "moemesh_gateway_prefetch_hints_total")};
    }

    private static String scrape(HttpClient http, int port) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/actuator/prometheus")).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("GET /actuator/prometheus on port " + port + ": HTTP " + r.statusCode());
        }
        return r.body();
    }

    /** Σ of the samples of a metric (any labels); 0 when absent. */
    static double value(String prometheus, String name) {
        double sum = 0;
        for (String line : prometheus.split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    /** Decode tokens/s of the prompts decoded together, {@code tokens} each (greedy, EOS ignored). */
    private static double generate(ManagedChannel ch, int[][] prompts, int tokens) throws Exception {
        GatewayServiceGrpc.GatewayServiceStub stub = GatewayServiceGrpc.newStub(ch);
        List<CompletableFuture<Void>> done = new ArrayList<>();
        AtomicInteger got = new AtomicInteger();
        long t0 = System.nanoTime();
        for (int[] p : prompts) {
            PromptIds.Builder ids = PromptIds.newBuilder();
            for (int id : p) {
                ids.addTokenIds(id);
            }
            TokenCountingStream stream = new TokenCountingStream(got);
            stub.withDeadlineAfter(20, TimeUnit.MINUTES).generate(GenerateRequest.newBuilder().setPromptIds(ids)
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(tokens).setIgnoreEos(true)).build(), stream);
            done.add(stream.done());
        }
        CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
        return got.get() / ((System.nanoTime() - t0) / 1e9);
    }
}
