package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/** How the expert-service starts with respect to TLS: never silently without it. */
class TlsStartupTest {
    /** Started with command-line arguments, which override application.yaml as on a real command line. */
    private static ConfigurableApplicationContext run(String... args) {
        List<String> all = new ArrayList<>(List.of("--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL),
                "--moemesh.expert.grpc-port=0", "--server.port=0", "--moemesh.expert.instance-id=expert-3"));
        all.addAll(List.of(args));
        return new SpringApplicationBuilder(ExpertServiceApplication.class).run(all.toArray(String[]::new));
    }

    @Test
    void mtlsByDefault_withoutCertificateFiles_failsToStart_namingThePropertiesAndThePlaintextSetting() {
        assertThatThrownBy(() -> run().close()).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.expert.tls.mode is mtls (the default), but moemesh.expert.tls.cert-chain "
                        + "(MOEMESH_EXPERT_TLS_CERT_CHAIN), moemesh.expert.tls.private-key "
                        + "(MOEMESH_EXPERT_TLS_PRIVATE_KEY), moemesh.expert.tls.ca-bundle (MOEMESH_EXPERT_TLS_CA_BUNDLE) are not set: this service's "
                        + "certificate chain, its PKCS#8 private key and the mesh CA bundle, PEM files (on Kubernetes "
                        + "mounted from a Secret; `moemesh up` writes them to <state-dir>/tls/). To run without TLS, set "
                        + "moemesh.expert.tls.mode=plaintext (MOEMESH_EXPERT_TLS_MODE=plaintext) explicitly.");
    }

    /**
     * Plaintext is the explicit opt-out of authentication: no caller has an identity, so LoadAssignment is open
     * (documented in application.yaml); the epoch-jump limit still holds.
     */
    @Test
    void explicitPlaintext_starts_andAcceptsLoadAssignmentFromAnyCaller_withinTheEpochJumpLimit()
            throws InterruptedException {
        try (ConfigurableApplicationContext ctx = run("--moemesh.expert.tls.mode=plaintext")) {
            int port = ctx.getBean(GrpcServerLifecycle.class).port();
            ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
                    .build();
            try {
                ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(ch)
                        .withDeadlineAfter(1, TimeUnit.MINUTES);
                assertThat(stub.loadAssignment(request(7)).getEpoch()).isEqualTo(7);
                assertThatThrownBy(() -> stub.loadAssignment(request(7 + 1001)))
                        .isInstanceOfSatisfying(StatusRuntimeException.class,
                                e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION));
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    private static LoadAssignmentRequest request(long epoch) {
        return LoadAssignmentRequest.newBuilder().setInstanceId("expert-3").setEpoch(epoch)
                .addExperts(ExpertRef.newBuilder().setLayer(0).setExpert(0)).build();
    }
}
