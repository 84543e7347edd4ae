package io.moemesh.gateway.auth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The chart mounts gateway.apiKeys.existingSecret as a Secret volume, which the kubelet keeps current by swapping its
 * {@code ..data} symlink; a running gateway must follow it: a key revoked in the Secret is refused, over HTTP and gRPC,
 * and a key added is accepted, within moemesh.gateway.api-keys-reload-period, without a restart (helm upgrade does
 * not roll the pods for a Secret's change).
 */
class ApiKeysSecretRotationTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private static int models(int port, String key) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/models"))
                .header("Authorization", "Bearer " + key).GET().build();
        return HTTP.send(req, HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    private static Status.Code modelInfo(ManagedChannel channel, String key) {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        try {
            GatewayServiceGrpc.newBlockingStub(channel).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                    .modelInfo(ModelInfoRequest.getDefaultInstance());
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        }
    }

    @Test
    void keyRevokedInTheMountedSecret_isRefusedByTheRunningGateway_andTheNewKeyAccepted(@TempDir Path mount)
            throws Exception {
        KubeletSecretVolume volume = new KubeletSecretVolume(mount);
        volume.project("api-keys", "leaked-key team-a\n");
        ConfigurableApplicationContext ctx = SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=1024",
                "--moemesh.gateway.api-keys-file=" + volume.file("api-keys"),
                "--moemesh.gateway.api-keys-reload-period=1s");
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1",
                ctx.getBean(GrpcServerLifecycle.class).port()).usePlaintext().build();
        try {
            int port = Integer.parseInt(ctx.getEnvironment().getProperty("local.server.port"));
            assertThat(models(port, "leaked-key")).isEqualTo(200);
            assertThat(modelInfo(channel, "leaked-key")).isEqualTo(Status.Code.OK);

            // The operator revokes the leaked key and issues a new one; the kubelet projects the new Secret.
            volume.project("api-keys", "new-key team-a\n");

            await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> {
                assertThat(models(port, "leaked-key")).as("revoked key").isEqualTo(401);
                assertThat(models(port, "new-key")).as("new key").isEqualTo(200);
            });
            assertThat(modelInfo(channel, "leaked-key")).isEqualTo(Status.Code.UNAUTHENTICATED);
            assertThat(modelInfo(channel, "new-key")).isEqualTo(Status.Code.OK);
            MeterRegistry meters = ctx.getBean(MeterRegistry.class);
            assertThat(meters.get("moemesh_gateway_api_keys_reloads").functionCounter().count()).isEqualTo(1);
            assertThat(meters.get("moemesh_gateway_api_keys_reload_failures").functionCounter().count()).isZero();
        } finally {
            channel.shutdownNow();
            ctx.close();
        }
    }
}
