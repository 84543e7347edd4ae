package io.moemesh.expert.support;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.util.List;
import org.springframework.test.context.DynamicPropertyRegistry;

/**
 * Certificates for the socket tests, issued once per test JVM under target/: the mesh's (a CA and the
 * identities the tests use) and another CA's, whose certificates the instances must refuse.
 */
public final class TestCertificates {
    /** Identities of the mesh CA: instances, the gateway (a mesh member, not a placer) and the placer. */
    public static final List<String> MESH_NAMES = List.of("expert-0", "expert-5", "expert-7", "gateway", "placer");
    private static CertificateDirectory mesh;
    private static CertificateDirectory foreign;

    private TestCertificates() {
    }

    public static synchronized CertificateDirectory mesh() {
        if (mesh == null) {
            mesh = CertificateDirectory.create(Path.of("target", "test-tls", "mesh"), MESH_NAMES);
        }
        return mesh;
    }

    /** Another CA, with certificates for the same names. */
    public static synchronized CertificateDirectory foreign() {
        if (foreign == null) {
            foreign = CertificateDirectory.create(Path.of("target", "test-tls", "foreign"), MESH_NAMES);
        }
        return foreign;
    }

    /** The instance's moemesh.expert.tls.* settings: its certificate of the mesh CA. */
    public static void serve(DynamicPropertyRegistry registry, String instanceId) {
        registry.add("moemesh.expert.tls.cert-chain", () -> mesh().certChain(instanceId).toString());
        registry.add("moemesh.expert.tls.private-key", () -> mesh().privateKey(instanceId).toString());
        registry.add("moemesh.expert.tls.ca-bundle", () -> mesh().caBundle().toString());
    }

    /** Channel credentials of {@code name} of the mesh CA. */
    public static ChannelCredentials as(String name) {
        return mesh().channelCredentials(name);
    }

    /** A channel to 127.0.0.1:port as {@code name} of the mesh CA. */
    public static ManagedChannel channel(int port, String name) {
        return Grpc.newChannelBuilderForAddress("127.0.0.1", port, as(name)).maxInboundMessageSize(64 << 20).build();
    }
}
