package io.moemesh.router.support;

import io.grpc.Grpc;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * An expert-service that only implements LoadAssignment, on a real socket with the mesh's mutual TLS: it records
 * each assignment with the caller's mesh identity, and can be told to refuse (UNAVAILABLE) or to hold its answer.
 */
public final class FakeExpertService extends ExpertServiceGrpc.ExpertServiceImplBase implements AutoCloseable {
    /** One LoadAssignment call. */
    public record Load(String caller, String instanceId, long epoch, int experts) {
    }

    private final Server server;
    public final List<Load> loads = new CopyOnWriteArrayList<>();
    public volatile boolean failing;
    public volatile CountDownLatch gate = new CountDownLatch(0);

    public FakeExpertService(CertificateDirectory certs, String id) {
        try {
            server = Grpc.newServerBuilderForPort(0, io.grpc.TlsServerCredentials.newBuilder()
                            .keyManager(certs.certChain(id).toFile(), certs.privateKey(id).toFile())
                            .trustManager(certs.caBundle().toFile())
                            .clientAuth(io.grpc.TlsServerCredentials.ClientAuth.REQUIRE).build())
                    .addService(ServerInterceptors.intercept(this, new PeerIdentityInterceptor())).build().start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String endpoint() {
        return "127.0.0.1:" + server.getPort();
    }

    @Override
    public void loadAssignment(LoadAssignmentRequest req, StreamObserver<LoadAssignmentResponse> obs) {
        try {
            gate.await(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (failing) {
            obs.onError(Status.UNAVAILABLE.withDescription("disk on fire").asRuntimeException());
            return;
        }
        loads.add(new Load(PeerIdentityInterceptor.current().map(MeshIdentity::name).orElse(""), req.getInstanceId(),
                req.getEpoch(), req.getExpertsCount()));
        obs.onNext(LoadAssignmentResponse.newBuilder().setEpoch(req.getEpoch()).setLoadedCount(req.getExpertsCount())
                .build());
        obs.onCompleted();
    }

    @Override
    public void close() {
        server.shutdownNow();
    }
}
