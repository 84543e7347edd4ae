package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshTransport;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.Tier;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The kvcache-service in a mesh the launcher starts ({@code moemesh up}'s code), with the gateway in front of it
 * (issue 11, items 3-5): its SSD tier outlives down / up, the gateway's queued write-backs reach it while
 * {@code down} stops the gateway, and requests get the reference tokens while it is killed, restarted, or serves a
 * damaged segment. Two mesh starts in all: the second test goes on in the mesh the first one brought up again.
 *
 * <p>The golden prompts through the OpenAI HTTP API: {@link #a} (41 tokens: 2 full 16-token blocks before its last
 * token, the part of a prompt a cache may serve) and {@link #b} (34 tokens, 2 such blocks) are served before the
 * down; the three others only while the service is down or just restarted.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class KvCacheMeshTest {
    private static final String NAME = "kvcache-up-down-up";
    /** HTTP requests are anonymous ("default"): the tenant salt of the gateway's block hashes. */
    private static final String TENANT = "default";
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private final List<GoldenCase> golden = GoldenCase.load(TestModels.MIXTRAL);
    private final GoldenCase a = golden.stream().filter(g -> g.inputIds().length == 41).findFirst().orElseThrow();
    private final GoldenCase b = golden.stream().filter(g -> g.inputIds().length == 34).findFirst().orElseThrow();
    /** The mesh of the second {@code up}, which the later tests reuse. */
    private RunningMesh mesh;

    @AfterAll
    void stop() {
        if (mesh != null) {
            mesh.close();
        }
    }

    /**
     * Blocks put by a client (in DRAM: only the SIGTERM of {@code down} moves them to SSD) and the finished golden
     * prompts' blocks the gateway wrote back are served from the SSD tier after the next {@code up}: a client's
     * byte-exact, and the gateway's to the same prompt with {@code cached_tokens} = its full blocks and the
     * reference tokens. The gateway's write-backs are made to be still queued when {@code down} sends it SIGTERM:
     * the service is frozen (SIGSTOP) while the prompts are served and thawed only once the gateway is shutting
     * down, so they reach the service only if the gateway's shutdown drains them.
     */
    @Test
    @Order(1)
    void blocksStoredBeforeDown_andTheGatewaysQueuedWriteBacks_areServedFromTheSsdTierAfterTheNextUp() throws Exception {
        Path state = TestMeshes.stateDir(NAME);
        MeshLauncher.down(state, Duration.ofSeconds(10));
        deleteTree(state.resolve("kvcache"));
        List<KvCacheProcess.Block> chain = KvCacheProcess.chain(System.nanoTime(), 4);
        List<ByteString> keys = chain.stream().map(KvCacheProcess.Block::key).toList();

        long pid;
        // The gateway's Put deadline and shutdown drain outlast the freeze below however slow the machine is: the
        // write-backs must wait for the service, not give up before the down (defaults: 10 s each).
        List<String> patient = List.of("-Dmoemesh.gateway.kvcache.put-timeout=3m",
                "-Dmoemesh.gateway.kvcache.drain-timeout=3m");
        try (RunningMesh first = TestMeshes.startWithKvCache(NAME, TestModels.MIXTRAL, 1, 1, patient)) {
            MeshState.Service kv = first.state().kvcache();
            pid = kv.pid();
            String endpoint = first.kvcacheEndpoint().orElseThrow();
            // up's transport: the service's domain socket where epoll works (the gateway then reads its files)
            if (MeshTransport.hostDefault() == MeshTransport.UNIX) {
                assertThat(endpoint).startsWith("unix:///").endsWith("/kvcache.sock");
            } else {
                assertThat(endpoint).isEqualTo(kv.grpcEndpoint());
            }
            assertThat(first.state().gateway().environment())
                    .containsEntry("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", endpoint);
            ManagedChannel ch = channel(first, kv);
            try {
                assertThat(KvCacheProcess.put(ch, chain).getResultsList())
                        .allSatisfy(r -> assertThat(r.getOutcome()).isEqualTo(PutOutcome.PUT_OUTCOME_STORED));
                // in DRAM (256 MiB): only the SIGTERM of down moves them to SSD
                assertThat(lookup(ch, keys).getTiersList()).containsOnly(Tier.TIER_DRAM);
            } finally {
                ch.shutdownNow();
            }

            Path gatewayLog = Path.of(first.state().gateway().logFile());
            ProcessHandle gateway = first.state().gateway().process().orElseThrow();
            signal(pid, "STOP");
            List<String> report;
            long logFrom;
            try {
                // each admission waits fetch-timeout (2 s) for the frozen service, then computes the prompt
                CompletableFuture<Completion> servedA = CompletableFuture.supplyAsync(() -> complete(first, a));
                CompletableFuture<Completion> servedB = CompletableFuture.supplyAsync(() -> complete(first, b));
                for (var served : List.of(servedA, servedB)) {
                    assertThat(served.get(2, TimeUnit.MINUTES).cachedTokens()).isZero();
                }
                assertGolden(a, servedA.join());
                assertGolden(b, servedB.join());
                logFrom = Files.size(gatewayLog);
                CompletableFuture<List<String>> down = CompletableFuture.supplyAsync(
                        () -> MeshLauncher.down(state, Duration.ofSeconds(30)));
                // DrainLifecycle's last line: the gateway is shutting down (its requests are drained), and alive
                await().atMost(Duration.ofMinutes(1)).pollInterval(Duration.ofMillis(50))
                        .until(() -> logSince(gatewayLog, logFrom).contains("drained:") || !gateway.isAlive());
                assertThat(gateway.isAlive()).as("the gateway waits for its write-backs; see " + gatewayLog).isTrue();
                signal(pid, "CONT");
                report = down.get(3, TimeUnit.MINUTES);
            } finally {
                // never leave it frozen (a failed assertion above): a no-op once it ran or exited
                new ProcessBuilder("kill", "-CONT", Long.toString(pid)).start().waitFor(30, TimeUnit.SECONDS);
            }
            assertThat(report).contains("stopped gateway (pid " + gateway.pid() + ")", "stopped kvcache (pid " + pid + ")");
            assertThat(logSince(gatewayLog, logFrom)).doesNotContain("not written back");
        }
        assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).isEmpty();
        try (Stream<Path> files = Files.walk(state.resolve("kvcache"))) {
            assertThat(files.filter(p -> p.toString().endsWith(".kvseg"))).as("segments kept by down").isNotEmpty();
        }

        mesh = TestMeshes.startWithKvCache(NAME, TestModels.MIXTRAL, 1, 1);
        MeshState.Service kv = mesh.state().kvcache();
        assertThat(ServiceProcess.serving("127.0.0.1", kv.grpcPort(), mesh.grpcCredentials(kv))).isTrue();
        ManagedChannel ch = channel(mesh, kv);
        try {
            LookupResponse found = lookup(ch, keys);
            assertThat(found.getPresentBlocks()).isEqualTo(chain.size());
            assertThat(found.getTiersList()).containsOnly(Tier.TIER_SSD);
            List<byte[]> served = KvCacheProcess.get(ch, keys);
            for (int i = 0; i < chain.size(); i++) {
                assertThat(served.get(i)).as("block %d", i).isEqualTo(chain.get(i).payload());
            }
            for (GoldenCase g : List.of(a, b)) {
                LookupResponse prompt = lookup(ch, promptChain(g));
                assertThat(prompt.getPresentBlocks()).as("%s: its full blocks, written back during down", g)
                        .isEqualTo(2);
                assertThat(prompt.getTiersList()).containsOnly(Tier.TIER_SSD);
            }
        } finally {
            ch.shutdownNow();
        }
        // a new gateway, its own cache empty: the prompt's full blocks come from the service's SSD tier
        Completion again = complete(mesh, a);
        assertGolden(a, again);
        assertThat(again.cachedTokens()).as("its 2 full blocks").isEqualTo(32);
        if (localReads(mesh)) {
            // the peer-uid domain socket: the gateway located the blocks and read them from the segment files
            int gatewayMetrics = mesh.state().gateway().managementPort();
            assertThat(metric(gatewayMetrics, "moemesh_gateway_kvcache_local_read_blocks_total"))
                    .as("blocks read from the segment files (Locate)").isEqualTo(2);
        }
    }

    /** Whether the gateway reaches the service over its peer-uid domain socket (so restores read the files). */
    private static boolean localReads(RunningMesh m) {
        return m.state().gateway().environment().getOrDefault("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "")
                .startsWith("unix:");
    }

    /**
     * In the mesh of the first test: while the kvcache-service is killed (kill -9) the golden prompts are computed
     * (the failed Lookups and Puts are counted, never the requests' problem); a byte flipped meanwhile in the
     * segment record of {@link #b}'s second block (written back before the down, never served to this gateway) is
     * caught by its CRC32C after the restart, so {@code b} gets the first block from the service ({@code
     * cached_tokens} 16, not 32) and the reference tokens; and the gateway writes to the restarted service again.
     */
    @Test
    @Order(2)
    void kvcacheKilledNine_orServingAFlippedByte_requestsGetTheReferenceTokens_andTheGatewayUsesItAgainAfterRestart()
            throws Exception {
        Assumptions.assumeTrue(mesh != null, "needs the mesh (and the SSD blocks) of the first test");
        List<GoldenCase> others = golden.stream().filter(g -> g != a && g != b).toList();
        int gatewayMetrics = mesh.state().gateway().managementPort();
        double fetchFailures = metric(gatewayMetrics, "moemesh_gateway_kvcache_fetch_failures_total");
        double failedWrites = metric(gatewayMetrics, "moemesh_gateway_kvcache_writeback_failed_blocks_total");

        mesh.kill(MeshLauncher.KVCACHE);
        for (GoldenCase g : others) {
            Completion r = complete(mesh, g);
            assertGolden(g, r);
            assertThat(r.cachedTokens()).isZero();
        }
        long fetching = others.stream().filter(g -> (g.inputIds().length - 1) / 16 > 0).count();
        assertThat(metric(gatewayMetrics, "moemesh_gateway_kvcache_fetch_failures_total") - fetchFailures)
                .as("one failed Lookup per prompt with a full block").isEqualTo(fetching);
        await().atMost(Duration.ofMinutes(1)).until(() ->
                metric(gatewayMetrics, "moemesh_gateway_kvcache_writeback_failed_blocks_total") > failedWrites);

        assertThat(KvCacheProcess.flipPayloadByte(mesh.stateDir().resolve("kvcache"), promptChain(b).get(1).toByteArray()))
                .as("records of b's second block").isEqualTo(1);
        mesh.restart(MeshLauncher.KVCACHE, TestMeshes.START_TIMEOUT);

        // the gateway comes back to the service by itself: a prompt served again is written back again
        GoldenCase probe = others.stream().filter(g -> (g.inputIds().length - 1) / 16 > 0).findFirst().orElseThrow();
        List<ByteString> probeBlocks = promptChain(probe);
        List<Completion> probes = new ArrayList<>();
        await().atMost(Duration.ofMinutes(1)).pollInterval(Duration.ofMillis(500)).until(() -> {
            probes.add(complete(mesh, probe));
            return withChannel(ch -> lookup(ch, probeBlocks).getPresentBlocks()) == probeBlocks.size();
        });
        probes.forEach(r -> assertGolden(probe, r));
        System.err.printf("KvCacheMeshTest: the gateway wrote to the restarted kvcache-service after %d request(s)%n",
                probes.size());

        double fetched = metric(gatewayMetrics, "moemesh_gateway_kvcache_fetched_blocks_total");
        double localBlocks = metric(gatewayMetrics, "moemesh_gateway_kvcache_local_read_blocks_total");
        Completion r = complete(mesh, b);
        assertGolden(b, r);
        assertThat(r.cachedTokens()).as("the first block only: the second failed its checksum").isEqualTo(16);
        assertThat(metric(gatewayMetrics, "moemesh_gateway_kvcache_fetched_blocks_total") - fetched).isEqualTo(1);
        if (localReads(mesh)) {
            // the restart's index rebuild already dropped the damaged record (its CRC32C), so Locate names only the
            // first block, which the gateway reads from the file (the client's own catch of a flipped byte:
            // kvcache-service's KvCacheLocateTest)
            assertThat(metric(gatewayMetrics, "moemesh_gateway_kvcache_local_read_blocks_total") - localBlocks)
                    .isEqualTo(1);
            assertThat(metric(gatewayMetrics, "moemesh_gateway_kvcache_local_read_failures_total")).isZero();
        }
        long checksumFailures = withChannel(ch -> KvCacheProcess.stats(ch).getTiers(1).getChecksumFailures());
        assertThat(checksumFailures).as("checksum failures of the SSD tier").isEqualTo(1);
        // the recomputed block replaces the dropped one
        await().atMost(Duration.ofMinutes(1)).until(() ->
                withChannel(ch -> lookup(ch, promptChain(b)).getPresentBlocks()) == 2);
    }

    /** One completion over the gateway's OpenAI HTTP API. */
    private record Completion(String text, int promptTokens, int completionTokens, int cachedTokens) {
    }

    /** The golden case's prompt, greedy, as many tokens as the reference has. */
    private static Completion complete(RunningMesh m, GoldenCase g) {
        try {
            String body = JSON.writeValueAsString(Map.of("model", TestModels.MIXTRAL, "prompt", g.prompt(),
                    "max_tokens", g.greedyIds().length, "temperature", 0));
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(m.gatewayHttp() + "/v1/completions"))
                    .header("Content-Type", "application/json").timeout(TestMeshes.CALL_DEADLINE)
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).as("%s: %s", g, r.body()).isEqualTo(200);
            JsonNode json = JSON.readTree(r.body());
            return new Completion(json.at("/choices/0/text").stringValue(), json.at("/usage/prompt_tokens").intValue(),
                    json.at("/usage/completion_tokens").intValue(),
                    json.at("/usage/prompt_tokens_details/cached_tokens").intValue());
        } catch (IOException e) {
            throw new AssertionError("completion of " + g + " failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /** The reference's prompt length, number of greedy tokens and their text. */
    private static void assertGolden(GoldenCase g, Completion r) {
        assertThat(r.promptTokens()).as("%s: prompt_tokens", g).isEqualTo(g.inputIds().length);
        assertThat(r.completionTokens()).as("%s: completion_tokens", g).isEqualTo(g.greedyIds().length);
        assertThat(r.text()).as("%s: text", g).isEqualTo(g.greedyText());
    }

    /** The keys of a golden prompt's full blocks before its last token, as the gateway hashes them. */
    private static List<ByteString> promptChain(GoldenCase g) {
        int[] ids = g.inputIds();
        List<ByteString> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < (ids.length - 1) / KvCacheProcess.BLOCK_TOKENS; i++) {
            parent = BlockHash.of(parent, ids, i * KvCacheProcess.BLOCK_TOKENS, KvCacheProcess.BLOCK_TOKENS,
                    KvCacheProcess.FINGERPRINT, TENANT);
            out.add(ByteString.copyFrom(parent.bytes()));
        }
        return out;
    }

    /** A channel as the gateway's identity, over the mesh's mutual TLS. */
    private static ManagedChannel channel(RunningMesh m, MeshState.Service kv) {
        return Grpc.newChannelBuilderForAddress("127.0.0.1", kv.grpcPort(), m.credentials("gateway")).build();
    }

    /** A call on a fresh channel to the mesh's kvcache-service (it may have restarted since the last one). */
    private <T> T withChannel(java.util.function.Function<ManagedChannel, T> call) {
        ManagedChannel ch = channel(mesh, mesh.state().kvcache());
        try {
            return call.apply(ch);
        } finally {
            ch.shutdownNow();
        }
    }

    private static LookupResponse lookup(ManagedChannel ch, List<ByteString> keys) {
        return KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).lookup(LookupRequest
                .newBuilder().setModelFingerprint(ByteString.copyFrom(KvCacheProcess.FINGERPRINT.bytes()))
                .setLayout(KvCacheProcess.layout()).addAllBlockHashes(keys).build());
    }

    /** {@code kill -SIG pid}: STOP freezes a process (its sockets stay open, nothing is answered), CONT thaws it. */
    private static void signal(long pid, String sig) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("kill -%s %d: %s", sig, pid, out).isZero();
    }

    /** What a service log got since {@code from} bytes (logs are appended across runs). */
    private static String logSince(Path log, long from) throws IOException {
        byte[] all = Files.readAllBytes(log);
        return new String(all, (int) Math.min(from, all.length), (int) Math.max(0, all.length - from),
                StandardCharsets.UTF_8);
    }

    private static double metric(int managementPort, String name) throws IOException, InterruptedException {
        String body = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/prometheus")).timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString())
                .body();
        Matcher m = Pattern.compile("(?m)^" + name + "(?:\\{[^}]*})? (\\S+)$").matcher(body);
        assertThat(m.find()).as("%s in the gateway's metrics", name).isTrue();
        return Double.parseDouble(m.group(1));
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
