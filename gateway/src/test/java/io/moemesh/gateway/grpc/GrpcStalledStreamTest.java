package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A gRPC client that stops reading its Generate stream does not make the server queue its messages without bound
 * (GenerateStream): once the messages sent while the call was not ready pass {@code max-stream-backlog-bytes}, its
 * sequence is cancelled and the call ends RESOURCE_EXHAUSTED, without the rest of the tokens or a final message.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class GrpcStalledStreamTest {
    private static final String MODEL = TestModels.MIXTRAL;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.admission.max-stream-backlog-bytes", () -> "4096");
    }

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    MeterRegistry meters;

    private double requests(String status) {
        var c = meters.find("moemesh.gateway.requests").tag("status", status).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void aClientThatStopsReading_isCancelledPastTheBacklogBound_andItsCallEnds() {
        double cancelledBefore = requests("cancelled");
        // A small receive window, so the server's transport fills soon once the client stops taking messages.
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                .flowControlWindow(4096).build();
        try {
            ClientCall<GenerateRequest, GenerateResponse> call = channel.newCall(GatewayServiceGrpc.getGenerateMethod(),
                    CallOptions.DEFAULT);
            AtomicInteger received = new AtomicInteger();
            AtomicBoolean finished = new AtomicBoolean();
            CompletableFuture<Status> closed = new CompletableFuture<>();
            call.start(new ClientCall.Listener<>() {
                @Override
                public void onMessage(GenerateResponse message) {
                    received.incrementAndGet();
                    finished.compareAndSet(false, message.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED);
                }

                @Override
                public void onClose(Status status, Metadata trailers) {
                    closed.complete(status);
                }
            }, new Metadata());
            // One message (the request id) and never another: big token messages (five alternatives each) for
            // the whole context pile up at the server.
            call.request(1);
            call.sendMessage(GenerateRequest.newBuilder().setPrompt("hi").setSampling(SamplingParams.newBuilder()
                    .setMaxTokens(480).setIgnoreEos(true).setLogprobs(5)).build());
            call.halfClose();

            await().atMost(Duration.ofSeconds(60)).until(() -> requests("cancelled") > cancelledBefore);
            // The server stopped adding messages and ended the call; the client learns it once it reads what the
            // transports hold (the end of a stream is never sent ahead of its data).
            call.request(Integer.MAX_VALUE);
            await().atMost(Duration.ofSeconds(20)).until(closed::isDone);
            assertThat(closed.join().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            assertThat(closed.join().getDescription()).contains("did not read");
            assertThat(received.get()).isLessThan(1 + 480);
            assertThat(finished).isFalse();
        } finally {
            channel.shutdownNow();
        }
    }
}
