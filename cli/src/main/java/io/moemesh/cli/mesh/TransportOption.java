package io.moemesh.cli.mesh;

import picocli.CommandLine.Option;

/** {@code --transport} of the commands that start a local mesh ({@code up}, {@code demo}, {@code chaos}). */
public final class TransportOption {
    @Option(names = "--transport", paramLabel = "tcp|unix",
            description = "How the gateway and the router reach the expert-services: unix (a Unix domain socket per "
                    + "instance, unix:///... endpoints; the default where Netty's epoll transport is available, i.e. "
                    + "Linux) or tcp (loopback ports; the default elsewhere).")
    String transport;

    /** The option's transport, or the host's default when it is not given. */
    public MeshTransport resolve() {
        return transport == null ? MeshTransport.hostDefault() : MeshTransport.parse(transport);
    }
}
