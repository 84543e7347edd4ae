package io.moemesh.cli.router;

import io.grpc.Grpc;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.concurrent.TimeUnit;

/**
 * A router-service on a real mutual TLS socket with scripted answers: Replan and DescribeRouter answer {@link #replan}
 * / {@link #describe}, or fail with {@link #failure}; it records the last request and the caller's mesh identity.
 */
final class StubRouter implements AutoCloseable {
    volatile ReplanResponse replan = ReplanResponse.getDefaultInstance();
    volatile DescribeRouterResponse describe = DescribeRouterResponse.getDefaultInstance();
    volatile Status failure;
    volatile ReplanRequest lastReplan;
    volatile String caller;
    private final Server server;

    /** Serving as the identity {@code router} of {@code certs}. */
    StubRouter(CertificateDirectory certs) {
        RouterServiceGrpc.RouterServiceImplBase service = new RouterServiceGrpc.RouterServiceImplBase() {
            @Override
            public void replan(ReplanRequest req, StreamObserver<ReplanResponse> obs) {
                lastReplan = req;
                answer(obs, replan);
            }

            @Override
            public void describeRouter(DescribeRouterRequest req, StreamObserver<DescribeRouterResponse> obs) {
                answer(obs, describe);
            }
        };
        try {
            server = Grpc.newServerBuilderForPort(0, MeshCredentials.load(certs.settings("router"), "tls").server())
                    .addService(ServerInterceptors.intercept(service, new PeerIdentityInterceptor())).build().start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private <T> void answer(StreamObserver<T> obs, T response) {
        caller = PeerIdentityInterceptor.current().map(MeshIdentity::name).orElse(null);
        Status f = failure;
        if (f != null) {
            obs.onError(f.asRuntimeException());
            return;
        }
        obs.onNext(response);
        obs.onCompleted();
    }

    String endpoint() {
        return "127.0.0.1:" + server.getPort();
    }

    @Override
    public void close() throws InterruptedException {
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
}
