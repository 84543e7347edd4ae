package io.moemesh.router.support;

import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Certificates of one mesh CA and the router's settings towards fake expert-services. */
public final class RouterTestMesh {
    public static final List<String> NAMES = List.of("router", "expert-0", "expert-1", "gateway", "placer");
    private static CertificateDirectory certs;

    private RouterTestMesh() {
    }

    public static synchronized CertificateDirectory certs() {
        if (certs == null) {
            certs = CertificateDirectory.create(Path.of("target", "test-tls", "mesh"), NAMES);
        }
        return certs;
    }

    /** {@code --key=value} arguments of a router placing on {@code experts}, its state in {@code stateDir}. */
    public static List<String> args(Path stateDir, List<FakeExpertService> experts) {
        CertificateDirectory c = certs();
        List<String> a = new ArrayList<>(List.of(
                "--moemesh.router.model-dir=" + TestModels.dir(TestModels.MIXTRAL),
                "--moemesh.router.state-dir=" + stateDir,
                "--moemesh.router.grpc-port=0", "--server.port=0", "--management.server.port=0",
                "--moemesh.router.min-routes-to-plan=20", "--moemesh.router.window-tokens=1000",
                "--moemesh.router.load-timeout=20s", "--moemesh.router.startup-retry=200ms",
                "--moemesh.router.tls.cert-chain=" + c.certChain("router"),
                "--moemesh.router.tls.private-key=" + c.privateKey("router"),
                "--moemesh.router.tls.ca-bundle=" + c.caBundle()));
        for (int i = 0; i < experts.size(); i++) {
            a.add("--moemesh.router.instances[" + i + "].id=expert-" + i);
            a.add("--moemesh.router.instances[" + i + "].endpoint=" + experts.get(i).endpoint());
        }
        return a;
    }

    /** A channel to the router as the mesh identity {@code gateway}. */
    public static ManagedChannel channel(int port) {
        return Grpc.newChannelBuilderForAddress("localhost", port, certs().channelCredentials("gateway")).build();
    }

    /** A channel to the router as the mesh identity {@code placer}, the default operator (the one Replan accepts). */
    public static ManagedChannel operatorChannel(int port) {
        return Grpc.newChannelBuilderForAddress("localhost", port, certs().channelCredentials("placer")).build();
    }
}
