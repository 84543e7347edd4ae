package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.serving.ServingClock;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Primary;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * When the engine thread dies of an Error (here an OutOfMemoryError thrown inside a step, where the serving clock is
 * read for a token's time), no request waits for it: a stream that sent chunks gets the error event and [DONE], the
 * requests queued behind it (HTTP plain and streamed, gRPC Generate) get 503 / UNAVAILABLE "the engine stopped", and
 * so does every request after, at once. The context is dirtied: its engine is gone.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@DirtiesContext
class EngineStoppedTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    /**
     * The system clock, with a trap on the engine thread: once armed, the read after the given number of engine
     * reads holds the thread until {@link #fire}, then throws an OutOfMemoryError out of the step.
     */
    static final class TrappedClock implements ServingClock {
        final AtomicInteger engineReadsLeft = new AtomicInteger(Integer.MAX_VALUE);
        final CountDownLatch holding = new CountDownLatch(1);
        final CountDownLatch fire = new CountDownLatch(1);

        @Override
        public long getAsLong() {
            if (Thread.currentThread().getName().equals("moemesh-engine") && engineReadsLeft.decrementAndGet() == -1) {
                holding.countDown();
                try {
                    fire.await(120, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new OutOfMemoryError("injected by the test");
            }
            return System.nanoTime();
        }
    }

    @TestConfiguration
    static class Clock {
        @Bean
        @Primary
        TrappedClock trappedClock() {
            return new TrappedClock();
        }
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    @LocalServerPort
    int port;
    @Autowired
    GrpcServerLifecycle grpc;
    @Autowired
    TrappedClock clock;
    @Autowired
    EngineLoop engine;

    private HttpRequest completion(boolean stream) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                        "{\"model\":\"" + MODEL + "\",\"prompt\":\"Once upon a time\",\"max_tokens\":300,"
                                + "\"temperature\":0,\"ignore_eos\":true,\"stream\":" + stream + "}")).build();
    }

    /** A Generate call whose end (its error, or null when it completed) the future holds. */
    private static CompletableFuture<Throwable> generate(ManagedChannel channel) {
        CompletableFuture<Throwable> end = new CompletableFuture<>();
        GatewayServiceGrpc.newStub(channel).generate(GenerateRequest.newBuilder().setPrompt("Once upon a time")
                .setSampling(SamplingParams.newBuilder().setMaxTokens(300).setIgnoreEos(true)).build(),
                new StreamObserver<>() {
                    @Override
                    public void onNext(GenerateResponse value) {
                    }

                    @Override
                    public void onError(Throwable t) {
                        end.complete(t);
                    }

                    @Override
                    public void onCompleted() {
                        end.complete(null);
                    }
                });
        return end;
    }

    private static void assertEngineStopped503(HttpResponse<String> r) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
        JsonNode error = JSON.readTree(r.body()).get("error");
        assertThat(error.get("code").stringValue()).isEqualTo("engine_stopped");
        assertThat(error.get("message").stringValue()).startsWith("the engine stopped: out of memory")
                .doesNotContain("Error");
    }

    private static void assertEngineStoppedUnavailable(Throwable t) {
        Status s = Status.fromThrowable(t);
        assertThat(s.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(s.getDescription()).startsWith("the engine stopped: out of memory");
    }

    @Test
    void engineThreadDyingOfAnError_endsTheRunningAndTheQueuedRequests_andRefusesNewOnesAtOnce() throws Exception {
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            // A stream that has sent its first ten tokens' chunks when the engine thread is held, then dies.
            clock.engineReadsLeft.set(10);
            CompletableFuture<HttpResponse<Stream<String>>> streaming = HTTP.sendAsync(completion(true),
                    HttpResponse.BodyHandlers.ofLines());
            assertThat(clock.holding.await(60, TimeUnit.SECONDS)).as("the engine reached the trap").isTrue();
            HttpResponse<Stream<String>> stream = streaming.get(30, TimeUnit.SECONDS);
            assertThat(stream.statusCode()).isEqualTo(200);
            CompletableFuture<List<String>> events = CompletableFuture.supplyAsync(
                    () -> stream.body().filter(l -> !l.isEmpty()).toList());

            // Queued behind the held thread: HTTP plain and streamed, and gRPC.
            CompletableFuture<HttpResponse<String>> plain = HTTP.sendAsync(completion(false),
                    HttpResponse.BodyHandlers.ofString());
            CompletableFuture<HttpResponse<String>> queuedStream = HTTP.sendAsync(completion(true),
                    HttpResponse.BodyHandlers.ofString());
            CompletableFuture<Throwable> grpcCall = generate(channel);
            await().atMost(Duration.ofSeconds(30)).until(() -> engine.inFlight() == 4);

            clock.fire.countDown();

            List<String> lines = events.get(30, TimeUnit.SECONDS);
            assertThat(lines.getFirst()).startsWith("data: {").contains("\"text\"");
            assertThat(lines.get(lines.size() - 2)).startsWith("data: {\"error\"")
                    .contains("the engine stopped: out of memory", "engine_stopped");
            assertThat(lines.getLast()).isEqualTo("data: [DONE]");
            assertEngineStopped503(plain.get(30, TimeUnit.SECONDS));
            assertEngineStopped503(queuedStream.get(30, TimeUnit.SECONDS));
            assertEngineStoppedUnavailable(grpcCall.get(30, TimeUnit.SECONDS));
            await().atMost(Duration.ofSeconds(10)).until(() -> !engine.alive());
            assertThat(engine.inFlight()).isZero();

            // After: refused at once, never queued.
            assertEngineStopped503(HTTP.send(completion(false), HttpResponse.BodyHandlers.ofString()));
            assertEngineStopped503(HTTP.send(completion(true), HttpResponse.BodyHandlers.ofString()));
            assertEngineStoppedUnavailable(generate(channel).get(30, TimeUnit.SECONDS));
            assertThat(engine.inFlight()).isZero();
        } finally {
            channel.shutdownNow();
        }
    }
}
