package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.EquivalentAddressGroup;
import io.grpc.ManagedChannel;
import io.grpc.NameResolver;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.gateway.scheduling.DrainLifecycle;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * A draining gateway (SIGTERM, after the preStop wait) tells its gRPC clients' connections to go away (GOAWAY), so a
 * client whose long-lived channel is pinned to it (a Kubernetes Service picks a pod per connection) reconnects
 * through the Service to a pod that serves, instead of having every call refused for the whole drain; the stream in
 * flight on the old connection goes on to its end. The client here reaches "the Service" as two addresses, the
 * draining gateway first and another pod (a stand-in answering every Generate), as pick_first over a Service's
 * ClusterIP would. The stream is held in flight by an expert stand-in, so the order does not depend on how fast the
 * machine generates.
 */
class DrainGoAwayTest {
    private static final String ANOTHER_POD = "another-pod";

    /** The other pod behind the Service: answers every Generate with one message marked {@link #ANOTHER_POD}. */
    private static final class AnotherPod extends GatewayServiceGrpc.GatewayServiceImplBase {
        @Override
        public void generate(GenerateRequest request, StreamObserver<GenerateResponse> out) {
            out.onNext(GenerateResponse.newBuilder().setRequestId(ANOTHER_POD).addTokenIds(1).build());
            out.onCompleted();
        }
    }

    /** A resolver giving these addresses, in this order, for any target: what the client sees of "the Service". */
    private static NameResolver.Factory service(SocketAddress... pods) {
        return new NameResolver.Factory() {
            @Override
            public NameResolver newNameResolver(URI target, NameResolver.Args args) {
                return new NameResolver() {
                    @Override
                    public String getServiceAuthority() {
                        return "gateway";
                    }

                    @Override
                    public void start(Listener2 listener) {
                        listener.onResult(ResolutionResult.newBuilder()
                                .setAddresses(List.of(new EquivalentAddressGroup(List.of(pods)))).build());
                    }

                    @Override
                    public void shutdown() {
                    }
                };
            }

            @Override
            public String getDefaultScheme() {
                return "service";
            }
        };
    }

    /** The request id of a one-token Generate's answer, or how the call was refused. */
    private static String generateOnce(ManagedChannel channel) {
        try {
            var it = GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .generate(GenerateRequest.newBuilder().setPrompt("hi")
                            .setSampling(SamplingParams.newBuilder().setMaxTokens(1)).build());
            String id = "";
            while (it.hasNext()) {
                id = it.next().getRequestId();
            }
            return id;
        } catch (StatusRuntimeException e) {
            return "refused: " + e.getStatus();
        }
    }

    @SuppressWarnings("deprecation") // nameResolverFactory: the simplest way to give a channel a fixed address list
    @Test
    void drainStart_sendsGoAway_aConnectedClientsNextCallReachesAnotherPod_whileItsStreamInFlightGoesOn()
            throws Exception {
        FakeExpertInstance expert = new FakeExpertInstance(TestModels.dir(TestModels.MIXTRAL));
        ConfigurableApplicationContext ctx = SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=1024",
                "--moemesh.gateway.shutdown-grace=60s", "--moemesh.gateway.placement-file=" + expert.placementFile(),
                // the stand-in is plaintext: the explicit opt-out of mutual TLS
                "--moemesh.gateway.tls.mode=plaintext", "--moemesh.gateway.dispatch.step-deadline=60s");
        Server anotherPod = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new AnotherPod()).build().start();
        ManagedChannel channel = NettyChannelBuilder.forTarget("service:///gateway")
                .nameResolverFactory(service(new InetSocketAddress("127.0.0.1", ctx.getBean(GrpcServerLifecycle.class)
                        .port()), new InetSocketAddress("127.0.0.1", anotherPod.getPort())))
                .usePlaintext().build();
        CountDownLatch held = new CountDownLatch(1);
        try {
            assertThat(generateOnce(channel)).as("the client's connection is to the gateway").isNotEqualTo(ANOTHER_POD)
                    .doesNotStartWith("refused");
            // The generation is held in its first step from the start (the stand-in answers no expert call until
            // released): it stays in flight, and the drain with it, however fast the machine generates.
            expert.hold.set(held);
            AtomicInteger tokens = new AtomicInteger();
            CompletableFuture<Status> done = new CompletableFuture<>();
            GatewayServiceGrpc.newStub(channel).generate(GenerateRequest.newBuilder().setPrompt("drain me")
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(40).setIgnoreEos(true)).build(),
                    new StreamObserver<>() {
                        @Override
                        public void onNext(GenerateResponse r) {
                            tokens.addAndGet(r.getTokenIdsCount());
                        }

                        @Override
                        public void onError(Throwable t) {
                            done.complete(Status.fromThrowable(t));
                        }

                        @Override
                        public void onCompleted() {
                            done.complete(Status.OK);
                        }
                    });
            EngineLoop engine = ctx.getBean(EngineLoop.class);
            await().atMost(Duration.ofSeconds(60)).until(() -> engine.inFlight() > 0);

            CompletableFuture<Void> draining = CompletableFuture.runAsync(ctx.getBean(DrainLifecycle.class)::stop);
            await().atMost(Duration.ofSeconds(30)).until(ctx.getBean(AdmissionControl.class)::draining);

            // A call that raced the GOAWAY may still be refused by the draining gateway; the next ones reconnect.
            await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(200))
                    .until(() -> generateOnce(channel), ANOTHER_POD::equals);
            assertThat(done).as("the stream in flight is not ended by the GOAWAY").isNotDone();

            held.countDown();
            expert.hold.set(null);
            assertThat(done.get(60, TimeUnit.SECONDS).getCode()).as("the stream in flight finishes on its old "
                    + "connection").isEqualTo(Status.Code.OK);
            assertThat(tokens.get()).isEqualTo(40);
            draining.get(60, TimeUnit.SECONDS);
        } finally {
            held.countDown();
            channel.shutdownNow();
            anotherPod.shutdownNow();
            ctx.close();
            expert.close();
        }
    }
}
