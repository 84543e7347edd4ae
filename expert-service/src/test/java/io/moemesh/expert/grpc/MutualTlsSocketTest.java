package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The expert-service's gRPC port as deployed (mutual TLS, default placer identities): no RPC without the mesh's
 * certificate, LoadAssignment only from a placer, and no LoadAssignment that could pin the instance's epoch.
 */
@SpringBootTest(classes = ExpertServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"moemesh.expert.grpc-port=0", "moemesh.expert.instance-id=expert-5"})
@DirtiesContext
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MutualTlsSocketTest {
    private static final int H = 64; // mixtral-tiny: 4 layers × 8 experts, hidden 64

    @Autowired
    GrpcServerLifecycle grpcServer;
    private final List<ManagedChannel> channels = new ArrayList<>();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        registry.add("moemesh.expert.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        TestCertificates.serve(registry, "expert-5");
    }

    /** The placer's first assignment: epoch 1, layer 0 experts 0 and 1. */
    @BeforeAll
    void placeEpochOne() {
        assign("placer", 1, 0, 1);
    }

    @AfterEach
    void closeChannels() {
        channels.forEach(ManagedChannel::shutdownNow);
        channels.clear();
    }

    private ManagedChannel channel(ChannelCredentials credentials) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", grpcServer.port(), credentials).build();
        channels.add(ch);
        return ch;
    }

    private ExpertServiceGrpc.ExpertServiceBlockingStub stub(String identity) {
        return ExpertServiceGrpc.newBlockingStub(channel(TestCertificates.as(identity))).withDeadlineAfter(1, TimeUnit.MINUTES);
    }

    private void assign(String identity, long epoch, int... layer0Experts) {
        LoadAssignmentRequest.Builder req = LoadAssignmentRequest.newBuilder().setInstanceId("expert-5").setEpoch(epoch);
        for (int e : layer0Experts) {
            req.addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(e));
        }
        assertThat(stub(identity).loadAssignment(req.build()).getEpoch()).isEqualTo(epoch);
    }

    private long servedEpoch() {
        return stub("placer").describeInstance(DescribeInstanceRequest.getDefaultInstance()).getEpoch();
    }

    // ------------------------------------------------------------------------------------------------------
    // Without the mesh's certificate: nothing, health and reflection included.

    /** Each RPC of the port, made on a channel; returns the status it ended with. */
    private static final List<Arguments> RPCS = List.of(
            Arguments.of("ExpertBatch", (Function<ManagedChannel, Status>) ch -> {
                try (BatchClient stream = new BatchClient(ch)) {
                    return status(() -> stream.send(Requests.single(0, 0, 1, H).build()).orTimeout(1, TimeUnit.MINUTES)
                            .join());
                }
            }),
            Arguments.of("Prefetch", (Function<ManagedChannel, Status>) ch -> status(() -> ExpertServiceGrpc
                    .newBlockingStub(ch).prefetch(PrefetchRequest.getDefaultInstance()))),
            Arguments.of("LoadAssignment", (Function<ManagedChannel, Status>) ch -> status(() -> ExpertServiceGrpc
                    .newBlockingStub(ch).loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId("expert-5")
                            .setEpoch(-1).build()))),
            Arguments.of("DescribeInstance", (Function<ManagedChannel, Status>) ch -> status(() -> ExpertServiceGrpc
                    .newBlockingStub(ch).describeInstance(DescribeInstanceRequest.getDefaultInstance()))),
            Arguments.of("grpc.health.v1.Health/Check", (Function<ManagedChannel, Status>) ch -> status(() -> HealthGrpc
                    .newBlockingStub(ch).check(HealthCheckRequest.getDefaultInstance()))),
            Arguments.of("grpc.reflection.v1.ServerReflection", (Function<ManagedChannel, Status>) ch ->
                    status(() -> listServices(ch))));

    private static Status status(Runnable call) {
        try {
            call.run();
            return Status.OK;
        } catch (RuntimeException e) {
            Throwable t = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
            return Status.fromThrowable(t);
        }
    }

    private static List<String> listServices(ManagedChannel ch) {
        CompletableFuture<List<String>> names = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> req = ServerReflectionGrpc.newStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                .serverReflectionInfo(new StreamObserver<>() {
                    @Override
                    public void onNext(ServerReflectionResponse r) {
                        names.complete(r.getListServicesResponse().getServiceList().stream().map(s -> s.getName()).toList());
                    }

                    @Override
                    public void onError(Throwable t) {
                        names.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        try {
            return names.join();
        } finally {
            req.onCompleted();
        }
    }

    Stream<Arguments> strangersAndRpcs() {
        List<Arguments> clients;
        try {
            clients = List.of(
                    Arguments.of("plaintext", InsecureChannelCredentials.create()),
                    Arguments.of("TLS without a client certificate", TlsChannelCredentials.newBuilder()
                            .trustManager(TestCertificates.mesh().caBundle().toFile()).build()),
                    Arguments.of("the placer's name from another CA", TlsChannelCredentials.newBuilder()
                            .keyManager(TestCertificates.foreign().certChain("placer").toFile(),
                                    TestCertificates.foreign().privateKey("placer").toFile())
                            .trustManager(TestCertificates.mesh().caBundle().toFile()).build()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return clients.stream().flatMap(c -> RPCS.stream().map(r -> Arguments.of(c.get()[0], c.get()[1], r.get()[0],
                r.get()[1])));
    }

    @ParameterizedTest(name = "{0}: {2}")
    @MethodSource("strangersAndRpcs")
    void everyRpc_fromAClientWithoutTheMeshCertificate_failsAtTheHandshake(String client, ChannelCredentials credentials,
                                                                           String rpc, Function<ManagedChannel, Status> call) {
        long before = servedEpoch();
        assertThat(call.apply(channel(credentials)).getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(servedEpoch()).isEqualTo(before);
    }

    @Test
    void everyRpc_fromAMeshMember_isServed() {
        ManagedChannel ch = channel(TestCertificates.as("gateway"));
        for (Arguments rpc : RPCS) {
            @SuppressWarnings("unchecked")
            Function<ManagedChannel, Status> call = (Function<ManagedChannel, Status>) rpc.get()[1];
            Status.Code expected = rpc.get()[0].equals("LoadAssignment") ? Status.Code.PERMISSION_DENIED : Status.Code.OK;
            assertThat(call.apply(ch).getCode()).as("%s", rpc.get()[0]).isEqualTo(expected);
        }
        assertThat(HealthGrpc.newBlockingStub(ch).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(ServingStatus.SERVING);
        assertThat(listServices(ch)).contains("moemesh.expert.v1.ExpertService");
    }

    // ------------------------------------------------------------------------------------------------------
    // LoadAssignment: placers only, and no epoch that would pin the instance.

    @Test
    void loadAssignment_fromAMeshMemberThatIsNotAPlacer_isPermissionDenied_andChangesNothing() {
        long before = servedEpoch();
        for (String identity : List.of("gateway", "expert-0")) {
            assertThatThrownBy(() -> assign(identity, before + 1, 2))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
                        assertThat(e.getStatus().getDescription()).isEqualTo("LoadAssignment is reserved to the placer "
                                + "identities [placer, router] (moemesh.expert.placer-identities); the caller is "
                                + "spiffe://moemesh/" + identity);
                    });
        }
        assertThat(servedEpoch()).isEqualTo(before);
    }

    @Test
    void rogueEpochs_fromThePlacer_areFailedPrecondition_theInstanceKeepsServing_andTakesTheNextLegitimateEpoch() {
        long served = servedEpoch();
        for (long rogue : new long[] {-1L /* 2^64-1 */, served + 1_000_000}) {
            assertThatThrownBy(() -> assign("placer", rogue, 3))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                        assertThat(e.getStatus().getDescription()).startsWith("assignment epoch "
                                + Long.toUnsignedString(rogue) + " jumps").contains("past the served epoch " + served);
                    });
            assertThat(servedEpoch()).isEqualTo(served);
        }
        try (BatchClient stream = new BatchClient(channel(TestCertificates.as("gateway")))) {
            ExpertBatchResponse r = stream.call(held(served));
            assertThat(Status.fromCodeValue(r.getStatus().getCode()).getCode()).isEqualTo(Status.Code.OK);
            assertThat(r.getServingEpoch()).isEqualTo(served);

            assign("placer", served + 1, 0, 1);
            ExpertBatchResponse next = stream.call(held(served + 1));
            assertThat(Status.fromCodeValue(next.getStatus().getCode()).getCode()).isEqualTo(Status.Code.OK);
            assertThat(next.getServingEpoch()).isEqualTo(served + 1);
        }
    }

    /** Layer 0 expert 0, which every assignment of this class holds. */
    private static ExpertBatchRequest held(long epoch) {
        return Requests.single(0, 0, epoch, H).build();
    }
}
