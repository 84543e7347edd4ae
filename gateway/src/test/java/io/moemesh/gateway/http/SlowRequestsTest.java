package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnknownFieldSet;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A client that sends a large request slowly holds one of the max-concurrent-large-requests permits (shared by the
 * HTTP and gRPC APIs) for at most moemesh.gateway.admission.request-read-timeout, here 1 s: an HTTP body that stops
 * after its first byte (far under the container's 30 s read timeout) loses its permit at the deadline and is
 * answered 408 then, its connection closed, without another byte; meanwhile a third client's large request is
 * served. A gRPC call that sends its large message and never half-closes takes no permit (grpc-java hands
 * the message over only at the half-close; a large one that half-closes does take one) and is closed
 * DEADLINE_EXCEEDED naming the setting, so its bytes are not held for longer either. Each test waits for the
 * permits taken ({@link IntakeLimiter#largeAdmitted}, which never drops), not for a count in a window of time.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class SlowRequestsTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final int LARGE = 300_000;
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.admission.request-read-timeout", () -> "1s");
        r.add("moemesh.gateway.admission.max-concurrent-large-requests", () -> "2");
        // The per-read bound the whole-body deadline must not wait for.
        r.add("server.tomcat.connection-timeout", () -> "30s");
    }

    @LocalServerPort
    int port;
    @Autowired
    GrpcServerLifecycle grpc;
    @Autowired
    IntakeLimiter intake;

    /** A valid completion request of {@code bytes} bytes: a tiny prompt, then JSON whitespace. */
    private static byte[] largeBody(int bytes) {
        String json = "{\"model\":\"" + MODEL + "\",\"prompt\":\"hi\",\"max_tokens\":2}";
        return (json + " ".repeat(bytes - json.length())).getBytes(StandardCharsets.UTF_8);
    }

    /** A socket that declared a large body and sent its first byte: the handler takes a permit and waits for more. */
    private Socket trickling() throws IOException {
        Socket s = new Socket("127.0.0.1", port);
        s.setSoTimeout(10_000);
        OutputStream out = s.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + LARGE + "\r\n\r\n{").getBytes(StandardCharsets.US_ASCII));
        out.flush();
        return s;
    }

    /** What the server answers on {@code s}, up to the end of its error body (or the connection's end). */
    private static String answer(Socket s) throws IOException {
        InputStream in = s.getInputStream();
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        try {
            for (int n; (n = in.read(buf)) > 0; ) {
                got.write(buf, 0, n);
                if (got.toString(StandardCharsets.UTF_8).contains("}}")) {
                    break;
                }
            }
        } catch (SocketTimeoutException e) {
            // whatever came is the answer
        }
        return got.toString(StandardCharsets.UTF_8);
    }

    @Test
    void slowHttpBodies_loseTheirPermitsAtTheDeadline_andEnd408_whileALargeRequestIsServed() throws Exception {
        long admittedBefore = intake.largeAdmitted();
        try (Socket a = trickling(); Socket b = trickling()) {
            // Both took a permit (each may already have lost it: the deadline is 1 s).
            await().atMost(Duration.ofSeconds(10)).until(() -> intake.largeAdmitted() == admittedBefore + 2);
            // Neither sends another byte: no thread waits for them, the deadline ends them.
            await().atMost(Duration.ofSeconds(10)).until(() -> intake.largeInIntake() == 0);

            HttpResponse<String> third = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                            + "/v1/completions")).timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(largeBody(LARGE))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(third.statusCode()).as(third.body()).isEqualTo(200);

            for (Socket slow : List.of(a, b)) {
                String answer = answer(slow);
                assertThat(answer).startsWith("HTTP/1.1 408").contains("\"code\":\"request_timeout\"",
                        "moemesh.gateway.admission.request-read-timeout");
            }
        }
        assertThat(intake.largeInIntake()).isZero();
    }

    /** A Generate message of about {@code bytes} bytes: a tiny prompt and a field this gateway does not know. */
    private static GenerateRequest largeGenerate(int bytes) {
        return GenerateRequest.newBuilder().setPrompt("hi").setSampling(SamplingParams.newBuilder().setMaxTokens(2))
                .setUnknownFields(UnknownFieldSet.newBuilder().addField(1000, UnknownFieldSet.Field.newBuilder()
                        .addLengthDelimited(ByteString.copyFrom(new byte[bytes])).build()).build()).build();
    }

    /**
     * Sends a large Generate and never half-closes; returns how the call closed. Called as a bidi stream: grpc-java's
     * client sends the message of a Generate only with its half-close, other clients at once (the server does not
     * check what type the client took the method for).
     */
    private static CompletableFuture<Status> neverHalfClosing(ManagedChannel channel) {
        CompletableFuture<Status> closed = new CompletableFuture<>();
        ClientCall<GenerateRequest, GenerateResponse> call = channel.newCall(GatewayServiceGrpc.getGenerateMethod()
                .toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING).build(), CallOptions.DEFAULT);
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        call.request(1);
        call.sendMessage(largeGenerate(LARGE));
        return closed;
    }

    @Test
    void grpcCallsThatNeverHalfClose_holdNoPermit_andAreClosedAtTheDeadline() {
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
        try {
            long admittedBefore = intake.largeAdmitted();
            CompletableFuture<Status> a = neverHalfClosing(channel);
            CompletableFuture<Status> b = neverHalfClosing(channel);

            await().atMost(Duration.ofSeconds(10)).until(() -> a.isDone() && b.isDone());
            for (Status s : List.of(a.join(), b.join())) {
                assertThat(s.getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
                assertThat(s.getDescription()).contains("did not half-close",
                        "moemesh.gateway.admission.request-read-timeout");
            }
            assertThat(intake.largeAdmitted()).as("neither was ever given a permit").isEqualTo(admittedBefore);

            // The same large message from a call that half-closes is admitted (takes a permit) and served.
            Iterator<GenerateResponse> third = GatewayServiceGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(60, TimeUnit.SECONDS).generate(largeGenerate(LARGE));
            List<GenerateResponse> messages = new ArrayList<>();
            third.forEachRemaining(messages::add);
            assertThat(messages.getLast().getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
            assertThat(intake.largeAdmitted()).isEqualTo(admittedBefore + 1);
            assertThat(intake.largeInIntake()).isZero();
        } finally {
            channel.shutdownNow();
        }
    }
}
