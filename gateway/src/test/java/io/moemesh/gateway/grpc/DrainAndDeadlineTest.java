package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Shutdown drains (what SIGTERM triggers through Spring's shutdown hook): in-flight streams finish, new
 * requests are refused, and streams still running when the grace ends are stopped with a retryable reason. A deadline or a client that goes away frees the sequence's KV blocks.
 */
class DrainAndDeadlineTest {

    private static ConfigurableApplicationContext start() {
        return start("60s");
    }

    private static ConfigurableApplicationContext start(String shutdownGrace, String... more) {
        java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of(
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=1024",
                "--moemesh.gateway.shutdown-grace=" + shutdownGrace));
        args.addAll(java.util.List.of(more));
        return SpringApplication.run(GatewayApplication.class, args.toArray(String[]::new));
    }

    private static GenerateRequest longRequest(int tokens) {
        return GenerateRequest.newBuilder().setPrompt("drain me")
                .setSampling(SamplingParams.newBuilder().setMaxTokens(tokens).setIgnoreEos(true)).build();
    }

    @Test
    void shutdown_finishesInFlightStreams_andRefusesNewOnes() throws Exception {
        ConfigurableApplicationContext ctx = start();
        int port = ctx.getBean(GrpcServerLifecycle.class).port();
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try {
            AtomicInteger tokens = new AtomicInteger();
            CompletableFuture<Status> done = new CompletableFuture<>();
            GatewayServiceGrpc.newStub(ch).generate(longRequest(300), new StreamObserver<>() {
                public void onNext(GenerateResponse r) {
                    tokens.addAndGet(r.getTokenIdsCount());
                }

                public void onError(Throwable t) {
                    done.complete(Status.fromThrowable(t));
                }

                public void onCompleted() {
                    done.complete(Status.OK);
                }
            });
            await().atMost(Duration.ofSeconds(60)).until(() -> tokens.get() > 0);
            // Taken before closing: a fast machine can finish the stream and close the context before the poll.
            var admission = ctx.getBean(io.moemesh.gateway.serving.AdmissionControl.class);
            CompletableFuture<Void> closing = CompletableFuture.runAsync(ctx::close);
            await().atMost(Duration.ofSeconds(30)).until(admission::draining);
            StatusRuntimeException refused = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                    () -> GatewayServiceGrpc.newBlockingStub(ch).generate(longRequest(2)).forEachRemaining(r -> { }));
            assertThat(refused.getStatus().getCode()).isIn(Status.Code.UNAVAILABLE);
            assertThat(done.get(120, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.OK);
            assertThat(tokens.get()).isEqualTo(300);
            closing.get(120, TimeUnit.SECONDS);
        } finally {
            ch.shutdownNow();
            if (ctx.isActive()) {
                ctx.close();
            }
        }
    }

    /** One Generate call's messages and how it ended. */
    private record Stream(java.util.List<GenerateResponse> seen, CompletableFuture<Status> done)
            implements StreamObserver<GenerateResponse> {
        Stream() {
            this(new java.util.concurrent.CopyOnWriteArrayList<>(), new CompletableFuture<>());
        }

        public void onNext(GenerateResponse r) {
            seen.add(r);
        }

        public void onError(Throwable t) {
            done.complete(Status.fromThrowable(t));
        }

        public void onCompleted() {
            done.complete(Status.OK);
        }
    }

    @Test
    void shutdown_whenTheGraceEnds_stopsTheStreamsWithFinishReasonCancelled_andARetryableError() throws Exception {
        // One sequence runs at a time and 63 wait behind it, ~500 tokens each: far more work than a 1 ms grace (or
        // the moments between the first token and the drain) lets finish, on however fast a machine.
        ConfigurableApplicationContext ctx = start("1ms", "--moemesh.gateway.max-running=1");
        int port = ctx.getBean(GrpcServerLifecycle.class).port();
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try {
            java.util.List<Stream> streams = new java.util.ArrayList<>();
            for (int i = 0; i < 64; i++) {
                Stream s = new Stream();
                streams.add(s);
                GatewayServiceGrpc.newStub(ch).generate(longRequest(500), s);
            }
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(1)).until(() -> streams.stream()
                    .anyMatch(s -> s.seen().stream().mapToInt(GenerateResponse::getTokenIdsCount).sum() > 0));
            var tokenizer = ctx.getBean(io.moemesh.model.MoeModel.class).tokenizer();
            // The drain alone (ctx.close() runs it first, then stops the servers, whose own 1 ms grace could cut the
            // last message in flight: that part is the servers', not the drain's).
            ctx.getBean(io.moemesh.gateway.scheduling.DrainLifecycle.class).stop();

            int cancelled = 0;
            int refusedBeforeAToken = 0;
            int stoppedByTheGrace = 0;
            for (Stream s : streams) {
                Status end = s.done().get(60, TimeUnit.SECONDS);
                if (end.getCode() == Status.Code.UNAVAILABLE) {
                    // Stopped while waiting: no token was sent, so the call's own status says why. On a loaded
                    // machine some of the 64 calls reach the gateway only after the drain began: refused at admission.
                    assertThat(end.getDescription()).contains("retry on another replica")
                            .containsAnyOf("drain grace", "admits no new requests");
                    refusedBeforeAToken++;
                    if (end.getDescription().contains("drain grace")) {
                        stoppedByTheGrace++;
                    }
                    continue;
                }
                assertThat(end.getCode()).isEqualTo(Status.Code.OK);
                GenerateResponse last = s.seen().getLast();
                if (last.getFinishReason() == io.moemesh.proto.gateway.v1.FinishReason.FINISH_REASON_CANCELLED) {
                    assertThat(last.getError().getCode()).isEqualTo(Status.Code.UNAVAILABLE.value());
                    assertThat(last.getError().getMessage()).contains("drain grace", "retry on another replica");
                    assertThat(last.getUsage().getCompletionTokens()).isPositive();
                    assertThat(last.getTrace().getInputIdsCount()).as("input_ids, on every last message")
                            .isEqualTo(s.seen().getFirst().getPromptTokens()).isPositive();
                    // The text held back when it was stopped (a character not yet complete) is on the last message:
                    // the texts join to all the text of the tokens sent.
                    int[] ids = s.seen().stream().flatMap(m -> m.getTokenIdsList().stream()).mapToInt(i -> i)
                            .toArray();
                    assertThat(s.seen().stream().map(GenerateResponse::getText)
                            .collect(java.util.stream.Collectors.joining())).isEqualTo(tokenizer.decode(ids, true));
                    cancelled++;
                    stoppedByTheGrace++;
                } else {
                    assertThat(last.getFinishReason()).as("a stream that was not stopped finished normally")
                            .isEqualTo(io.moemesh.proto.gateway.v1.FinishReason.FINISH_REASON_LENGTH);
                }
            }
            // The one running when the grace ended (it had streamed tokens; none if the drain fell on the step boundary
            // where one had just finished and the next was not yet admitted), and the ones still waiting; any stream
            // stopped after its first token must have ended CANCELLED (checked above: else it would not be LENGTH).
            assertThat(cancelled).isLessThanOrEqualTo(1);
            assertThat(refusedBeforeAToken).isPositive();
            // Whatever the timing, the grace stopped something: the stream streaming when the drain began (CANCELLED)
            // or, had it just finished, the ones queued behind it (refused with the drain grace's message).
            assertThat(stoppedByTheGrace).isPositive();
        } finally {
            ch.shutdownNow();
            if (ctx.isActive()) {
                ctx.close();
            }
        }
    }

    /**
     * A Generate call whose client stopped reading cannot end (its status waits behind the data the client does not
     * take). After the drain, which gave requests the shutdown-grace, the gRPC server's stop gives such a call only its
     * own short grace, not the shutdown-grace a second time.
     */
    @Test
    void stop_aCallWhoseClientStoppedReading_holdsTheServerForItsShortGrace_notTheShutdownGraceAgain() throws Exception {
        ConfigurableApplicationContext ctx = start("60s", "--moemesh.gateway.admission.max-stream-backlog-bytes=4096");
        int port = ctx.getBean(GrpcServerLifecycle.class).port();
        var meters = ctx.getBean(io.micrometer.core.instrument.MeterRegistry.class);
        // A small receive window, so the server's transport fills soon once the client stops taking messages.
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().flowControlWindow(4096)
                .build();
        try {
            io.grpc.ClientCall<GenerateRequest, GenerateResponse> call = ch.newCall(
                    GatewayServiceGrpc.getGenerateMethod(), io.grpc.CallOptions.DEFAULT);
            call.start(new io.grpc.ClientCall.Listener<>() { }, new io.grpc.Metadata());
            // The first message and never another.
            call.request(1);
            call.sendMessage(GenerateRequest.newBuilder().setPrompt("hi").setSampling(SamplingParams.newBuilder()
                    .setMaxTokens(480).setIgnoreEos(true).setLogprobs(5)).build());
            call.halfClose();
            // Its sequence is cancelled past the backlog bound: the drain has nothing to wait for, the call is open.
            await().atMost(Duration.ofSeconds(60)).until(() -> {
                var c = meters.find("moemesh.gateway.requests").tag("status", "client_stalled").counter();
                return c != null && c.count() > 0;
            });
            CompletableFuture<Void> closing = CompletableFuture.runAsync(ctx::close);
            // Long before the 60 s shutdown-grace: the server's own 5 s, and its forced stop.
            closing.get(30, TimeUnit.SECONDS);
        } finally {
            ch.shutdownNow();
            if (ctx.isActive()) {
                ctx.close();
            }
        }
    }

    @Test
    void deadlineOrClientCancel_endsTheCall_andFreesTheSequencesKvBlocks() throws Exception {
        try (ConfigurableApplicationContext ctx = start()) {
            int port = ctx.getBean(GrpcServerLifecycle.class).port();
            PrefixCachingKvCache cache = ctx.getBean(PrefixCachingKvCache.class);
            ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
            try {
                var it = GatewayServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MILLISECONDS)
                        .generate(longRequest(400));
                StatusRuntimeException e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                        () -> it.forEachRemaining(r -> { }));
                assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);

                // A client that goes away mid-stream: its sequence is dropped at the next step.
                AtomicInteger tokens = new AtomicInteger();
                io.grpc.Context.CancellableContext call = io.grpc.Context.current().withCancellation();
                CompletableFuture<Status> end = new CompletableFuture<>();
                call.run(() -> GatewayServiceGrpc.newStub(ch).generate(longRequest(450), new StreamObserver<>() {
                    public void onNext(GenerateResponse r) {
                        if (tokens.addAndGet(r.getTokenIdsCount()) >= 3) {
                            call.cancel(null);
                        }
                    }

                    public void onError(Throwable t) {
                        end.complete(Status.fromThrowable(t));
                    }

                    public void onCompleted() {
                        end.complete(Status.OK);
                    }
                }));
                assertThat(end.get(60, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.CANCELLED);
                await().atMost(Duration.ofSeconds(30)).until(() -> cache.usedBlocks() == 0);
            } finally {
                ch.shutdownNow();
            }
        }
    }
}
