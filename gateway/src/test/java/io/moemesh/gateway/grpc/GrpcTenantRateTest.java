package io.moemesh.gateway.grpc;

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
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.proto.gateway.v1.TokenizeResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.HeldRequestBytes;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A gRPC Generate or Tokenize call is charged to its tenant's rate when it starts, right after its authentication
 * and before its message is read, whether it is then served or refused (AdmissionProperties, gateway/README.md), as
 * an HTTP generation request is: a tenant past its rate is refused RESOURCE_EXHAUSTED at once, with the HTTP API's
 * Retry-After in the description, holding none of the server's max-held-request-bytes; calls refused later (a
 * message over max-request-bytes, a request-read timeout, a protocol mistake) are charged, each call once. One
 * tenant per test: burst 2, refilled after 1000 s.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GrpcTenantRateTest {
    private static final int MAX_REQUEST_BYTES = 65536;
    /** Room for two held messages of {@link #HELD} bytes, not for a third of {@link #HELD_TOO}. */
    private static final int MAX_HELD = 131072;
    private static final int HELD = 60_000;
    private static final int HELD_TOO = 20_000;
    /** What the calls that never half-close wait for; a refusal at the call's start comes long before it. */
    private static final Duration READ_TIMEOUT = Duration.ofSeconds(3);
    /**
     * Generate as a client may call it that sends its message at once: grpc-java's own client sends a one-message
     * call's message only with its half-close; the server does not check what type the client took the method for.
     */
    private static final MethodDescriptor<GenerateRequest, GenerateResponse> GENERATE_SENT_AT_ONCE =
            GatewayServiceGrpc.getGenerateMethod().toBuilder().setType(MethodDescriptor.MethodType.BIDI_STREAMING)
                    .build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(TestModels.QWEN2_MOE).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> "key-alice:alice,key-bob:bob,key-carol:carol,key-dave:dave,"
                + "key-erin:erin,key-frank:frank");
        r.add("moemesh.gateway.admission.tenant-requests-per-second", () -> "0.001");
        r.add("moemesh.gateway.admission.tenant-burst", () -> "2");
        r.add("moemesh.gateway.admission.request-read-timeout", () -> READ_TIMEOUT.toMillis() + "ms");
        r.add("moemesh.gateway.admission.max-request-bytes", () -> Integer.toString(MAX_REQUEST_BYTES));
        r.add("moemesh.gateway.admission.max-held-request-bytes", () -> Integer.toString(MAX_HELD));
    }

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    HeldRequestBytes held;
    ManagedChannel channel;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    @AfterAll
    void disconnect() {
        channel.shutdownNow();
    }

    /** A one-token Generate of about {@code bytes} serialized bytes (padded with a field the server ignores). */
    private static GenerateRequest generate(int bytes) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setPrompt("gRPC")
                .setSampling(SamplingParams.newBuilder().setMaxTokens(1));
        if (bytes > 0) {
            b.setUnknownFields(UnknownFieldSet.newBuilder().addField(1000, UnknownFieldSet.Field.newBuilder()
                    .addLengthDelimited(ByteString.copyFrom(new byte[bytes])).build()).build());
        }
        return b.build();
    }

    /** Starts a call of {@code tenant}'s that sends {@code messages}, each at once, and half-closes when asked. */
    private <Q, R> CompletableFuture<Status> call(String tenant, MethodDescriptor<Q, R> method, List<Q> messages,
                                                  boolean halfClose) {
        ClientCall<Q, R> c = channel.newCall(method, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS));
        CompletableFuture<Status> closed = new CompletableFuture<>();
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer key-" + tenant);
        c.start(new ClientCall.Listener<>() {
            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, headers);
        c.request(Integer.MAX_VALUE);
        messages.forEach(c::sendMessage);
        if (halfClose) {
            c.halfClose();
        }
        return closed;
    }

    private Status served(String tenant, GenerateRequest request) {
        return call(tenant, GENERATE_SENT_AT_ONCE, List.of(request), true).join();
    }

    private static void pastTheRate(Status s, String tenant) {
        assertThat(s.getCode()).as(s.toString()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(s.getDescription()).startsWith("tenant " + tenant + " exceeds its rate limit of 0.001 requests/s")
                .matches(".*\\(retry after \\d+ s\\)$");
    }

    @Test
    void aCallPastItsTenantsRate_isRefusedAtItsStart_withItsRetryAfter_itsMessageNeverRead() {
        assertThat(served("alice", generate(0)).getCode()).isEqualTo(Status.Code.OK);
        assertThat(served("alice", generate(0)).getCode()).isEqualTo(Status.Code.OK);

        // Its message sent, never half-closed: refused at once, not held until the read timeout.
        CompletableFuture<Status> past = call("alice", GENERATE_SENT_AT_ONCE, List.of(generate(HELD)), false);
        assertThat(past).succeedsWithin(READ_TIMEOUT.dividedBy(2)).satisfies(s -> pastTheRate(s, "alice"));
        assertThat(held.held()).isZero();
        MethodDescriptor<TokenizeRequest, TokenizeResponse> tokenize = GatewayServiceGrpc.getTokenizeMethod();
        assertThat(call("alice", tokenize, List.of(TokenizeRequest.newBuilder().setText("hi").build()), true))
                .succeedsWithin(READ_TIMEOUT.dividedBy(2)).satisfies(s -> pastTheRate(s, "alice"));
    }

    /**
     * Were a tenant past its rate read, its calls that never half-close would hold the budget every tenant's calls
     * share until the read timeout, and another tenant's ordinary call would be reset for it.
     */
    @Test
    void aTenantPastItsRate_holdsNoneOfTheSharedHeldBytes_soAnotherTenantsCallIsServed() {
        assertThat(served("bob", generate(0)).getCode()).isEqualTo(Status.Code.OK);
        assertThat(served("bob", generate(0)).getCode()).isEqualTo(Status.Code.OK);
        List<CompletableFuture<Status>> bobs = List.of(
                call("bob", GENERATE_SENT_AT_ONCE, List.of(generate(HELD)), false),
                call("bob", GENERATE_SENT_AT_ONCE, List.of(generate(HELD)), false));
        await().atMost(Duration.ofSeconds(10))
                .until(() -> bobs.stream().allMatch(CompletableFuture::isDone) || held.held() >= 2L * HELD);

        assertThat(served("carol", generate(HELD_TOO)).getCode()).isEqualTo(Status.Code.OK);
        assertThat(bobs).allSatisfy(c -> assertThat(c).succeedsWithin(Duration.ofSeconds(10))
                .satisfies(s -> pastTheRate(s, "bob")));
    }

    @Test
    void aMessageOverMaxRequestBytes_isChargedToo() {
        for (int i = 0; i < 2; i++) {
            Status s = served("dave", generate(MAX_REQUEST_BYTES));
            assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
            assertThat(s.getDescription()).contains("exceeds maximum size " + MAX_REQUEST_BYTES);
        }

        pastTheRate(served("dave", generate(0)), "dave");
    }

    @Test
    void aCallThatNeverHalfCloses_isChargedToo() {
        List<CompletableFuture<Status>> timedOut = List.of(
                call("erin", GENERATE_SENT_AT_ONCE, List.of(generate(0)), false),
                call("erin", GENERATE_SENT_AT_ONCE, List.of(generate(0)), false));
        assertThat(timedOut).allSatisfy(c -> assertThat(c).succeedsWithin(Duration.ofSeconds(20))
                .satisfies(s -> assertThat(s.getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED))
                .satisfies(s -> assertThat(s.getDescription())
                        .contains("moemesh.gateway.admission.request-read-timeout")));

        pastTheRate(served("erin", generate(0)), "erin");
    }

    /** A call that breaks the one-message rule is charged as it starts, once, not per message. */
    @Test
    void aCallIsChargedOnce_notPerMessage_evenWhenItSendsTwo() {
        Status twoMessages = call("frank", GENERATE_SENT_AT_ONCE, List.of(generate(0), generate(0)), true).join();
        Status second = served("frank", generate(0));
        Status third = served("frank", generate(0));

        assertThat(second.getCode()).as("the burst's second token").isEqualTo(Status.Code.OK);
        pastTheRate(third, "frank");
        assertThat(twoMessages.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    }
}
