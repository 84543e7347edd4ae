package io.moemesh.cli.router;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Path;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Option;

/**
 * {@code --endpoint}, {@code --state-dir}: which router {@code router replan} and {@code router describe} call, and as
 * whom. The router's port is mutual TLS (only certificates of the mesh CA get in; Replan only from the operator
 * identities), so the call always goes as the mesh's {@link MeshLauncher#PLACER} with the certificate {@code up}
 * issued into {@code <state-dir>/tls/}; the endpoint is the router recorded in {@code <state-dir>/mesh.json} unless
 * {@code --endpoint} names another.
 */
final class RouterConnectionOptions {
    private static final Pattern HOST_PORT = Pattern.compile("(.+):(\\d{1,5})");

    @Option(names = "--endpoint", paramLabel = "HOST:PORT",
            description = "The router's gRPC address (default: the router of the mesh in --state-dir).")
    String endpoint;

    @Option(names = "--state-dir", paramLabel = "DIR",
            description = "The mesh's state folder: its mesh.json names the router, its tls/ holds the placer "
                    + "certificate the call is made with (default .moemesh under the repository root).")
    Path stateDir;

    Path stateDir() {
        return (stateDir != null ? stateDir : MeshHome.detect().defaultStateDir()).toAbsolutePath().normalize();
    }

    /**
     * HOST:PORT to call.
     *
     * @throws IllegalArgumentException when --endpoint is malformed, or without it when the state folder records no
     *     mesh or a mesh without a router
     */
    String endpoint() {
        if (endpoint != null) {
            Matcher m = HOST_PORT.matcher(endpoint);
            if (!m.matches() || Integer.parseInt(m.group(2)) > 65535) {
                throw new IllegalArgumentException("--endpoint must be HOST:PORT with a port in [0, 65535], got \""
                        + endpoint + "\"");
            }
            return endpoint;
        }
        Path dir = stateDir();
        Optional<MeshState> state = MeshState.read(dir);
        if (state.isEmpty()) {
            throw new IllegalArgumentException("no mesh in " + dir + " (no " + MeshState.file(dir) + "): start one with "
                    + "moemesh up, or name the router with --endpoint HOST:PORT");
        }
        if (state.get().router() == null) {
            throw new IllegalArgumentException("the mesh in " + dir + " runs without a router (up --no-router, or an "
                    + "older mesh.json): restart it without --no-router, or name a router with --endpoint HOST:PORT");
        }
        return state.get().router().grpcEndpoint();
    }

    /** A channel to {@code endpoint} with the placer's certificate of the state folder (mutual TLS). */
    ManagedChannel channel(String endpoint) {
        ChannelCredentials credentials = CertificateDirectory.open(MeshLauncher.tlsDir(stateDir()))
                .channelCredentials(MeshLauncher.PLACER);
        Matcher m = HOST_PORT.matcher(endpoint);
        if (!m.matches()) {
            throw new IllegalArgumentException("router endpoint must be HOST:PORT, got \"" + endpoint + "\"");
        }
        return Grpc.newChannelBuilderForAddress(m.group(1), Integer.parseInt(m.group(2)), credentials).build();
    }
}
