package io.moemesh.cli.mesh;

/**
 * The mesh could not be brought up (a service exited or never became healthy) or a service is unreachable:
 * the command prints the message as one block and exits with {@link #EXIT_CODE}, the same code as a gRPC
 * UNAVAILABLE from the gateway.
 */
public final class MeshException extends RuntimeException {
    public static final int EXIT_CODE = 3;

    public MeshException(String message) {
        super(message);
    }
}
