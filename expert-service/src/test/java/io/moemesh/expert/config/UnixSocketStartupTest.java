package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.InsecureChannelCredentials;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/** moemesh.expert.grpc-unix-socket: the expert-service on a real Unix domain socket next to its TCP port. */
class UnixSocketStartupTest {
    @TempDir
    Path dir;

    private static ConfigurableApplicationContext run(String... args) {
        List<String> all = new ArrayList<>(List.of("--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL),
                "--moemesh.expert.grpc-port=0", "--server.port=0", "--management.server.port=0",
                "--moemesh.expert.tls.mode=plaintext", "--moemesh.expert.backend=noop",
                "--moemesh.expert.assign-all=true"));
        all.addAll(List.of(args));
        return new SpringApplicationBuilder(ExpertServiceApplication.class).run(all.toArray(String[]::new));
    }

    @Test
    void expertBatch_overTheUnixSocket_afterAStaleSocketFileWasLeftBehind() throws Exception {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        Path socket = dir.resolve("expert-0.sock");
        // what a kill -9 of the previous instance leaves: the file, nobody listening
        try (ServerSocketChannel dead = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            dead.bind(UnixDomainSocketAddress.of(socket));
        }
        int hidden = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL)).hiddenSize();
        try (ConfigurableApplicationContext ctx = run("--moemesh.expert.grpc-unix-socket=" + socket);
             GrpcInstanceClient client = new GrpcInstanceClient("expert-0", "unix://" + socket,
                     InsecureChannelCredentials.create(), DType.DTYPE_F32, 64 << 20)) {
            float[] x = new float[hidden];
            for (int i = 0; i < hidden; i++) {
                x[i] = i / (float) hidden - 0.5f;
            }
            float[] out = client.call(new ExpertCall(0, 0, x, 1, hidden, new int[] {2}, new int[] {0, 1},
                    new float[] {0.5f, 0.5f})).get(1, TimeUnit.MINUTES);
            // the noop backend's identity experts: out = (Σw)·x
            for (int i = 0; i < hidden; i++) {
                assertThat(out[i]).isCloseTo(x[i], within(1e-6f));
            }
        }
        assertThat(socket).doesNotExist();
    }

    @Test
    void tooLongSocketPath_failsToStart_namingThePropertyAndTheLimit() {
        String longPath = "/tmp/" + "x".repeat(120) + ".sock";
        assertThatThrownBy(() -> run("--moemesh.expert.grpc-unix-socket=" + longPath).close()).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.expert.grpc-unix-socket").hasMessageContaining("at most 107");
    }
}
