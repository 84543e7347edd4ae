package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.moemesh.gateway.serving.ServingClock;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Primary;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * TTFT counts from the request's arrival at the API (docs/metrics.md): a client that sends its headers, then its
 * body or message only after a pause, gets a TTFT that includes the pause, over HTTP and over gRPC (counted from
 * the request's submit, it was a few milliseconds). The pause is placed on the gateway's {@link ServingClock}, not
 * slept: once the gateway has read the clock for the arrival (the headers are in), the clock moves on by the pause,
 * then the rest is sent.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class RequestArrivalTest {
    private static final String MODEL = TestModels.MIXTRAL;
    /** The client's pause between its headers and the rest, on the gateway's clock. */
    private static final Duration PAUSE = Duration.ofSeconds(1);

    /** The system clock moved on by {@link #advance}, counting its reads (an arrival is one). */
    static final class SteppedClock implements ServingClock {
        final AtomicLong offset = new AtomicLong();
        final AtomicInteger reads = new AtomicInteger();

        @Override
        public long getAsLong() {
            reads.incrementAndGet();
            return System.nanoTime() + offset.get();
        }

        /** Once the gateway has read the clock after {@code readsBefore} reads, moves it on by {@code by}. */
        void advanceAfterARead(int readsBefore, Duration by) {
            await().atMost(Duration.ofSeconds(30)).until(() -> reads.get() > readsBefore);
            offset.addAndGet(by.toNanos());
        }
    }

    @TestConfiguration
    static class Clock {
        @Bean
        @Primary
        SteppedClock steppedClock() {
            return new SteppedClock();
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
    MeterRegistry meters;
    @Autowired
    SteppedClock clock;

    private Timer ttft() {
        return meters.get("moemesh.gateway.time.to.first.token").timer();
    }

    @Test
    void http_bodySentAfterAPause_ttftIncludesThePause() throws Exception {
        Timer ttft = ttft();
        long count = ttft.count();
        double before = ttft.totalTime(TimeUnit.NANOSECONDS);
        byte[] body = ("{\"model\":\"" + MODEL + "\",\"prompt\":\"hello\",\"max_tokens\":2}").getBytes(StandardCharsets.UTF_8);
        try (Socket s = new Socket("127.0.0.1", port)) {
            OutputStream out = s.getOutputStream();
            int reads = clock.reads.get();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            clock.advanceAfterARead(reads, PAUSE);
            out.write(body);
            out.flush();
            InputStream in = s.getInputStream();
            String answer = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            assertThat(answer).startsWith("HTTP/1.1 200");
        }
        assertThat(ttft.count()).isEqualTo(count + 1);
        assertThat(ttft.totalTime(TimeUnit.NANOSECONDS) - before).isGreaterThanOrEqualTo(PAUSE.toNanos() / 2d);
    }

    @Test
    void grpc_messageSentAfterAPause_ttftIncludesThePause() throws Exception {
        Timer ttft = ttft();
        long count = ttft.count();
        double before = ttft.totalTime(TimeUnit.NANOSECONDS);
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            // Connected first: the Generate call's headers then leave at once.
            GatewayServiceGrpc.newBlockingStub(channel).modelInfo(ModelInfoRequest.getDefaultInstance());
            // grpc-java holds back the headers of a call whose client sends one message until that message goes
            // (one write for both): declared as a streaming call, its headers leave at start(), as a large message's
            // headers arrive before the rest of it. The server does not look at the declared type.
            MethodDescriptor<GenerateRequest, GenerateResponse> generate = GatewayServiceGrpc.getGenerateMethod()
                    .toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING).build();
            ClientCall<GenerateRequest, GenerateResponse> call = channel.newCall(generate, CallOptions.DEFAULT);
            int reads = clock.reads.get();
            CompletableFuture<Status> done = new CompletableFuture<>();
            call.start(new ClientCall.Listener<>() {
                @Override
                public void onClose(Status status, Metadata trailers) {
                    done.complete(status);
                }
            }, new Metadata());
            call.request(Integer.MAX_VALUE);
            // The message follows the pause.
            clock.advanceAfterARead(reads, PAUSE);
            call.sendMessage(GenerateRequest.newBuilder().setPrompt("hello")
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(2)).build());
            call.halfClose();
            assertThat(done.get(60, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.OK);
        } finally {
            channel.shutdownNow();
        }
        assertThat(ttft.count()).isEqualTo(count + 1);
        assertThat(ttft.totalTime(TimeUnit.NANOSECONDS) - before).isGreaterThanOrEqualTo(PAUSE.toNanos() / 2d);
    }
}
