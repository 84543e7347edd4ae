package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
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
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * A draining gateway's 503 {@code draining} closes its connection (Connection: close): a keep-alive client opened
 * its connection before the drain, and a Kubernetes Service only picks a pod when a connection opens, so its retry
 * must come on a new connection, which goes to a pod that serves, not on this one, refused again until the drain ends.
 * (Tomcat closes after every 503 by itself; the gateway says Connection: close itself, whatever the container.)
 */
class DrainingConnectionCloseTest {

    /** Everything the gateway sends on {@code s} until it closes the connection; fails on the socket's timeout. */
    private static String untilClosed(Socket s) throws IOException {
        InputStream in = s.getInputStream();
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        byte[] buf = new byte[4096];
        try {
            for (int n; (n = in.read(buf)) >= 0; ) {
                got.write(buf, 0, n);
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the connection was kept open; got: " + got, e);
        }
        return got.toString(StandardCharsets.UTF_8);
    }

    @Test
    void whileDraining_the503DrainingAnswer_closesTheClientsKeepAliveConnection() throws Exception {
        FakeExpertInstance expert = new FakeExpertInstance(TestModels.dir(TestModels.MIXTRAL));
        ConfigurableApplicationContext ctx = SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=1024",
                "--moemesh.gateway.shutdown-grace=60s", "--moemesh.gateway.placement-file=" + expert.placementFile(),
                // the stand-in is plaintext: the explicit opt-out of mutual TLS
                "--moemesh.gateway.tls.mode=plaintext", "--moemesh.gateway.dispatch.step-deadline=60s");
        int httpPort = Integer.parseInt(ctx.getEnvironment().getProperty("local.server.port"));
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", ctx.getBean(GrpcServerLifecycle.class)
                .port()).usePlaintext().build();
        CountDownLatch held = new CountDownLatch(1);
        try (Socket keepAlive = new Socket("127.0.0.1", httpPort)) {
            keepAlive.setSoTimeout(10_000);
            // A generation held in its first step (the stand-in answers no expert call until released) keeps the
            // drain going, however fast the machine generates.
            expert.hold.set(held);
            GatewayServiceGrpc.newStub(channel).generate(GenerateRequest.newBuilder().setPrompt("drain me")
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(40).setIgnoreEos(true)).build(),
                    new StreamObserver<GenerateResponse>() {
                        @Override
                        public void onNext(GenerateResponse r) {
                        }

                        @Override
                        public void onError(Throwable t) {
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            EngineLoop engine = ctx.getBean(EngineLoop.class);
            await().atMost(Duration.ofSeconds(60)).until(() -> engine.inFlight() > 0);
            CompletableFuture<Void> draining = CompletableFuture.runAsync(ctx.getBean(DrainLifecycle.class)::stop);
            await().atMost(Duration.ofSeconds(30)).until(ctx.getBean(AdmissionControl.class)::draining);

            String body = "{\"model\":\"" + TestModels.MIXTRAL + "\",\"prompt\":\"hi\",\"max_tokens\":1}";
            keepAlive.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)
                    .getBytes(StandardCharsets.UTF_8));
            String answer = untilClosed(keepAlive);

            assertThat(answer).startsWith("HTTP/1.1 503").containsIgnoringCase("Connection: close")
                    .contains("Retry-After: 1", "\"draining\"");
            held.countDown();
            expert.hold.set(null);
            draining.get(60, TimeUnit.SECONDS);
        } finally {
            held.countDown();
            channel.shutdownNow();
            ctx.close();
            expert.close();
        }
    }
}
