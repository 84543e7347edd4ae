package io.moemesh.gateway.support;

import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshCredentials;
import java.nio.file.Path;
import java.util.List;
import org.springframework.test.context.DynamicPropertyRegistry;

/** One mesh CA for the gateway's tests, with certificates for the gateway, the router and expert stand-ins. */
public final class TestCertificates {
    public static final List<String> NAMES = List.of("gateway", "router", "expert-0", "expert-1", "expert-2");
    private static CertificateDirectory mesh;

    private TestCertificates() {
    }

    public static synchronized CertificateDirectory mesh() {
        if (mesh == null) {
            mesh = CertificateDirectory.create(Path.of("target", "test-tls", "mesh"), NAMES);
        }
        return mesh;
    }

    /** Server and channel credentials of {@code name} (files read once). */
    public static MeshCredentials credentials(String name) {
        return MeshCredentials.load(mesh().settings(name), "test." + name + ".tls");
    }

    /** The gateway's moemesh.gateway.tls.* as a pod gets them. */
    public static void gatewayTls(DynamicPropertyRegistry r) {
        CertificateDirectory c = mesh();
        r.add("moemesh.gateway.tls.cert-chain", () -> c.certChain("gateway").toString());
        r.add("moemesh.gateway.tls.private-key", () -> c.privateKey("gateway").toString());
        r.add("moemesh.gateway.tls.ca-bundle", () -> c.caBundle().toString());
    }
}
