package io.moemesh.router.support;

import io.grpc.Grpc;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.service.tls.CertificateDirectory;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * An expert-service that only implements LoadAssignment (and DescribeInstance's epochs), on a real socket with the
 * mesh's mutual TLS, with the epoch rules of expert.proto in small (one served and one prepared epoch per fake; stages
 * PREPARE, COMMIT, ABORT and the load-and-switch of UNSPECIFIED; no expert or epoch-jump checks). It records each
 * LoadAssignment call with the caller's mesh identity, and can be told to refuse (UNAVAILABLE, every call or some
 * stages; or PREPARE with a status of the test's own, details included) or to hold its answers. Its refusal of an
 * epoch older than the served one carries the ErrorInfo EPOCH_NUMBER_REFUSED (domain expert.moemesh.io), as the real
 * expert-service's does.
 */
public final class FakeExpertService extends ExpertServiceGrpc.ExpertServiceImplBase implements AutoCloseable {
    /** One accepted LoadAssignment that loads experts (PREPARE or UNSPECIFIED). */
    public record Load(String caller, String instanceId, long epoch, int experts) {
    }

    /** One answered LoadAssignment call of any stage, refused ones included. */
    public record Call(AssignmentStage stage, long epoch, Status.Code code) {
    }

    private final Server server;
    public final List<Load> loads = new CopyOnWriteArrayList<>();
    public final List<Call> calls = new CopyOnWriteArrayList<>();
    /** Every call fails with UNAVAILABLE. */
    public volatile boolean failing;
    /** Calls of these stages fail with UNAVAILABLE. */
    public final Set<AssignmentStage> failingStages = ConcurrentHashMap.newKeySet();
    /** When set, every PREPARE is answered with this status (its details included). */
    public volatile com.google.rpc.Status prepareRefusal;
    public volatile CountDownLatch gate = new CountDownLatch(0);
    /** COMMIT calls also wait for this one. */
    public volatile CountDownLatch commitGate = new CountDownLatch(0);
    private final String id;
    /** epoch → the experts loaded for it. */
    private final java.util.Map<Long, List<ExpertRef>> assigned = new java.util.HashMap<>();
    private long served;
    private long prepared;

    public FakeExpertService(CertificateDirectory certs, String id) {
        this.id = id;
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

    public synchronized long served() {
        return served;
    }

    public synchronized long prepared() {
        return prepared;
    }

    /** As if an earlier router had loaded {@code epoch} with {@code experts} onto it (served; nothing prepared). */
    public synchronized void serve(long epoch, List<ExpertRef> experts) {
        served = epoch;
        prepared = 0;
        assigned.put(epoch, List.copyOf(experts));
    }

    /** Its id, epochs and the served epoch's experts only. */
    @Override
    public void describeInstance(DescribeInstanceRequest req, StreamObserver<DescribeInstanceResponse> obs) {
        DescribeInstanceResponse r;
        synchronized (this) {
            r = DescribeInstanceResponse.newBuilder().setInstanceId(id).setEpoch(served).setPreparedEpoch(prepared)
                    .addAllAssignedExperts(assigned.getOrDefault(served, List.of())).build();
        }
        obs.onNext(r);
        obs.onCompleted();
    }

    @Override
    public void loadAssignment(LoadAssignmentRequest req, StreamObserver<LoadAssignmentResponse> obs) {
        try {
            gate.await(60, TimeUnit.SECONDS);
            if (req.getStage() == AssignmentStage.ASSIGNMENT_STAGE_COMMIT) {
                commitGate.await(60, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        AssignmentStage stage = req.getStage();
        long epoch = req.getEpoch();
        if (failing || failingStages.contains(stage)) {
            calls.add(new Call(stage, epoch, Status.Code.UNAVAILABLE));
            obs.onError(Status.UNAVAILABLE.withDescription("disk on fire").asRuntimeException());
            return;
        }
        com.google.rpc.Status refusal = prepareRefusal;
        if (refusal != null && stage == AssignmentStage.ASSIGNMENT_STAGE_PREPARE) {
            calls.add(new Call(stage, epoch, Status.fromCodeValue(refusal.getCode()).getCode()));
            obs.onError(io.grpc.protobuf.StatusProto.toStatusRuntimeException(refusal));
            return;
        }
        LoadAssignmentResponse r;
        synchronized (this) {
            String refused = switch (stage) {
                case ASSIGNMENT_STAGE_COMMIT -> epoch == served || epoch == prepared ? null : "cannot commit epoch "
                        + epoch + ": it is neither prepared nor served (serving epoch " + served + ")";
                case ASSIGNMENT_STAGE_ABORT -> epoch == served ? "cannot abort epoch " + epoch + ": it is the served epoch"
                        : null;
                default -> epoch < served ? "assignment epoch " + epoch + " is older than the served epoch " + served
                        : null;
            };
            if (refused != null) {
                calls.add(new Call(stage, epoch, Status.Code.FAILED_PRECONDITION));
                com.google.rpc.Status.Builder status = com.google.rpc.Status.newBuilder()
                        .setCode(Status.Code.FAILED_PRECONDITION.value()).setMessage(refused);
                if (stage != AssignmentStage.ASSIGNMENT_STAGE_COMMIT
                        && stage != AssignmentStage.ASSIGNMENT_STAGE_ABORT) {
                    // An epoch older than the served one: a refusal of the epoch's number, marked as the real
                    // expert-service marks it (expert.proto's ErrorInfo EPOCH_NUMBER_REFUSED).
                    status.addDetails(com.google.protobuf.Any.pack(com.google.rpc.ErrorInfo.newBuilder()
                            .setDomain("expert.moemesh.io").setReason("EPOCH_NUMBER_REFUSED")
                            .putMetadata("epoch", Long.toUnsignedString(epoch))
                            .putMetadata("served_epoch", Long.toUnsignedString(served))
                            .putMetadata("prepared_epoch", Long.toUnsignedString(prepared)).build()));
                }
                obs.onError(io.grpc.protobuf.StatusProto.toStatusRuntimeException(status.build()));
                return;
            }
            if (stage == AssignmentStage.ASSIGNMENT_STAGE_PREPARE
                    || stage == AssignmentStage.ASSIGNMENT_STAGE_UNSPECIFIED) {
                assigned.put(epoch, List.copyOf(req.getExpertsList()));
            }
            switch (stage) {
                case ASSIGNMENT_STAGE_PREPARE -> prepared = epoch == served ? prepared : epoch;
                case ASSIGNMENT_STAGE_COMMIT -> {
                    prepared = epoch == prepared ? 0 : prepared;
                    served = epoch;
                }
                case ASSIGNMENT_STAGE_ABORT -> prepared = epoch == prepared ? 0 : prepared;
                default -> {
                    served = epoch;
                    prepared = 0;
                }
            }
            r = LoadAssignmentResponse.newBuilder().setEpoch(epoch).setLoadedCount(req.getExpertsCount())
                    .setServingEpoch(served).setPreparedEpoch(prepared).build();
        }
        calls.add(new Call(stage, epoch, Status.Code.OK));
        if (stage == AssignmentStage.ASSIGNMENT_STAGE_PREPARE || stage == AssignmentStage.ASSIGNMENT_STAGE_UNSPECIFIED) {
            loads.add(new Load(PeerIdentityInterceptor.current().map(MeshIdentity::name).orElse(""),
                    req.getInstanceId(), epoch, req.getExpertsCount()));
        }
        obs.onNext(r);
        obs.onCompleted();
    }

    @Override
    public void close() {
        server.shutdownNow();
    }
}
