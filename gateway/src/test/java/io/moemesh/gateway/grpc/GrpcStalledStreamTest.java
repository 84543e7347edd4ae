package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.InternalChannelz;
import io.grpc.InternalInstrumented;
import io.grpc.InternalWithLogId;
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
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A gRPC client that stops reading its Generate stream does not make the server queue its messages without bound
 * (GenerateStream): once the messages sent while the call was not ready pass {@code max-stream-backlog-bytes}, its
 * sequence is cancelled and the call's stream is reset, without the rest of the tokens or a final message: the
 * stream closes at the gateway while the client reads nothing, so what was queued for it is dropped at once. The
 * request counts as client_stalled, not as a client's cancellation, and the log says why, with its request id.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@ExtendWith(OutputCaptureExtension.class)
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

    /**
     * Streams the gateway's gRPC transport has open over all its connections: started less ended, from grpc's channelz
     * (internal API, read-only: the one view of the transport's own streams).
     */
    private long openStreams() throws Exception {
        InternalChannelz z = InternalChannelz.instance();
        for (InternalInstrumented<InternalChannelz.ServerStats> s : z.getServers(0, 1000).servers) {
            InternalChannelz.ServerStats stats = s.getStats().get();
            boolean ours = false;
            for (InternalInstrumented<InternalChannelz.SocketStats> listen : stats.listenSockets) {
                ours |= listen.getStats().get().local instanceof InetSocketAddress a && a.getPort() == server.port();
            }
            if (!ours) {
                continue;
            }
            long open = 0;
            for (InternalWithLogId socket : z.getServerSockets(InternalChannelz.id(s), 0, 1000).sockets) {
                InternalChannelz.TransportStats t = z.getSocket(InternalChannelz.id(socket)).getStats().get().data;
                open += t.streamsStarted - t.streamsSucceeded - t.streamsFailed;
            }
            return open;
        }
        throw new IllegalStateException("no channelz server listens on " + server.port());
    }

    @Test
    void aClientThatStopsReading_isResetPastTheBacklogBound_droppingWhatWasQueuedForIt_countedAsStalled(
            CapturedOutput output) {
        double cancelledBefore = requests("cancelled");
        double stalledBefore = requests("client_stalled");
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
            call.sendMessage(GenerateRequest.newBuilder().setRequestId("stalled-1").setPrompt("hi")
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(480).setIgnoreEos(true).setLogprobs(5))
                    .build());
            call.halfClose();

            await().atMost(Duration.ofSeconds(60)).until(() -> requests("client_stalled") > stalledBefore);
            assertThat(requests("cancelled")).as("not a client's cancellation").isEqualTo(cancelledBefore);
            assertThat(output.getOut()).contains("Generate stalled-1 ended, its stream reset: the client did not read");
            // The client reads nothing more, and the call has no deadline: an end of the call sent as trailers would
            // wait at the gateway behind the queued messages until it did; the reset closes the stream there now,
            // dropping them.
            await().atMost(Duration.ofSeconds(10)).until(() -> openStreams() == 0);
            assertThat(closed).isNotDone();
            assertThat(received.get()).isEqualTo(1);

            // grpc-java's client reports the reset after handing out the messages it holds itself (its 4 KiB window).
            call.request(Integer.MAX_VALUE);
            await().atMost(Duration.ofSeconds(10)).until(closed::isDone);
            assertThat(closed.join().getCode()).as("RST_STREAM: no status travels with it")
                    .isEqualTo(Status.Code.CANCELLED);
            assertThat(received.get()).isLessThan(1 + 480);
            assertThat(finished).isFalse();
            // The reset stream no longer holds the connection's flow-control window: the same connection serves
            // the next call to its end.
            var next = GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                    .generate(GenerateRequest.newBuilder().setPrompt("hi").setSampling(SamplingParams.newBuilder()
                            .setMaxTokens(4).setIgnoreEos(true)).build());
            GenerateResponse last = null;
            while (next.hasNext()) {
                last = next.next();
            }
            assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        } finally {
            channel.shutdownNow();
        }
    }
}
