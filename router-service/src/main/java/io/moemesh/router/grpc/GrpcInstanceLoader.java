package io.moemesh.router.grpc;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.coordination.AssignedExpert;
import io.moemesh.router.coordination.InstanceLoader;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * LoadAssignment over gRPC, one channel per endpoint, with the router's client credentials (its certificate is the
 * mesh identity {@code router}, which expert-services accept as a placer).
 */
public final class GrpcInstanceLoader implements InstanceLoader, AutoCloseable {
    private final ChannelCredentials credentials;
    private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();

    public GrpcInstanceLoader(ChannelCredentials credentials) {
        this.credentials = credentials;
    }

    @Override
    public void load(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout) {
        ManagedChannel ch = channels.computeIfAbsent(instance.getEndpoint(),
                e -> Grpc.newChannelBuilder(e, credentials).build());
        LoadAssignmentRequest.Builder req = LoadAssignmentRequest.newBuilder().setInstanceId(instance.getId())
                .setEpoch(epoch);
        for (AssignedExpert a : experts) {
            req.addExperts(ExpertRef.newBuilder().setLayer(a.layer()).setExpert(a.expert()));
        }
        LoadAssignmentResponse r;
        try {
            r = ExpertServiceGrpc.newBlockingStub(ch).withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
                    .loadAssignment(req.build());
        } catch (StatusRuntimeException e) {
            throw new IllegalStateException(e.getStatus().getCode() + (e.getStatus().getDescription() == null ? ""
                    : " " + e.getStatus().getDescription()), e);
        }
        if (r.getEpoch() != epoch) {
            throw new IllegalStateException("answered epoch " + r.getEpoch() + " for epoch " + epoch);
        }
    }

    @Override
    public void close() {
        for (ManagedChannel ch : channels.values()) {
            ch.shutdownNow();
        }
    }
}
