package io.moemesh.router.grpc;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.coordination.AssignedExpert;
import io.moemesh.router.coordination.HeldEpochs;
import io.moemesh.router.coordination.InstanceLoader;
import io.moemesh.router.coordination.InstanceRefusedException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * LoadAssignment with its stages (PREPARE, COMMIT, ABORT), and DescribeInstance for the epochs held, over gRPC, one
 * channel per endpoint, with the router's client credentials (its certificate is the mesh identity {@code router},
 * which expert-services accept as a placer).
 */
public final class GrpcInstanceLoader implements InstanceLoader, AutoCloseable {
    /** expert.proto's ErrorInfo domain of the expert-service's refusals. */
    static final String ERROR_DOMAIN = "expert.moemesh.io";
    /** expert.proto's ErrorInfo reason of a LoadAssignment refused for its epoch's number (LoadAssignmentRequest). */
    static final String EPOCH_NUMBER_REFUSED = "EPOCH_NUMBER_REFUSED";
    private final ChannelCredentials credentials;
    private final UnixSocketSecurity unixSecurity;
    private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();

    public GrpcInstanceLoader(ChannelCredentials credentials) {
        this(credentials, UnixSocketSecurity.PEER_UID);
    }

    /** @param unixSecurity how {@code unix:///} endpoints are reached ({@code moemesh.router.unix-socket-security}) */
    public GrpcInstanceLoader(ChannelCredentials credentials, UnixSocketSecurity unixSecurity) {
        this.credentials = credentials;
        this.unixSecurity = unixSecurity;
    }

    @Override
    public void prepare(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout) {
        LoadAssignmentRequest.Builder req = request(instance, epoch, AssignmentStage.ASSIGNMENT_STAGE_PREPARE);
        for (AssignedExpert a : experts) {
            req.addExperts(ExpertRef.newBuilder().setLayer(a.layer()).setExpert(a.expert()));
        }
        LoadAssignmentResponse r = call(instance, req.build(), timeout);
        // Prepared, or already served (an instance that loaded the epoch from its placement file).
        if (r.getEpoch() != epoch || (r.getPreparedEpoch() != epoch && r.getServingEpoch() != epoch)) {
            throw new IllegalStateException("answered PREPARE of epoch " + Long.toUnsignedString(epoch) + " with epoch "
                    + Long.toUnsignedString(r.getEpoch()) + ", serving " + Long.toUnsignedString(r.getServingEpoch())
                    + ", prepared " + Long.toUnsignedString(r.getPreparedEpoch()));
        }
    }

    @Override
    public void commit(Instance instance, long epoch, Duration timeout) {
        LoadAssignmentResponse r = call(instance, request(instance, epoch, AssignmentStage.ASSIGNMENT_STAGE_COMMIT)
                .build(), timeout);
        if (r.getServingEpoch() != epoch) {
            throw new IllegalStateException("answered COMMIT of epoch " + Long.toUnsignedString(epoch)
                    + " serving epoch " + Long.toUnsignedString(r.getServingEpoch()));
        }
    }

    @Override
    public void abort(Instance instance, long epoch, Duration timeout) {
        call(instance, request(instance, epoch, AssignmentStage.ASSIGNMENT_STAGE_ABORT).build(), timeout);
    }

    @Override
    public HeldEpochs held(Instance instance, Duration timeout) {
        DescribeInstanceResponse r;
        try {
            r = ExpertServiceGrpc.newBlockingStub(channel(instance))
                    .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
                    .describeInstance(DescribeInstanceRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw failure(e);
        }
        return new HeldEpochs(r.getEpoch(), r.getAssignedExpertsList().stream()
                .map(e -> new AssignedExpert(e.getLayer(), e.getExpert())).toList(), r.getPreparedEpoch());
    }

    private static LoadAssignmentRequest.Builder request(Instance instance, long epoch, AssignmentStage stage) {
        return LoadAssignmentRequest.newBuilder().setInstanceId(instance.getId()).setEpoch(epoch).setStage(stage);
    }

    /** @throws IllegalStateException "CODE description" of a failed call, the StatusRuntimeException as its cause */
    private LoadAssignmentResponse call(Instance instance, LoadAssignmentRequest req, Duration timeout) {
        try {
            return ExpertServiceGrpc.newBlockingStub(channel(instance))
                    .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).loadAssignment(req);
        } catch (StatusRuntimeException e) {
            throw failure(e);
        }
    }

    /** Shuts the channels of endpoints no instance in {@code instances} has: instances that left stay gone. */
    @Override
    public void placingOn(List<Instance> instances) {
        Set<String> kept = instances.stream().map(Instance::getEndpoint).collect(Collectors.toSet());
        channels.entrySet().removeIf(en -> {
            if (kept.contains(en.getKey())) {
                return false;
            }
            en.getValue().shutdown(); // graceful: a straggling call (one cancelled on its timeout) may finish
            return true;
        });
    }

    /** The channel to {@code instance}'s endpoint, opened on first use. */
    ManagedChannel channel(Instance instance) {
        return channels.computeIfAbsent(instance.getEndpoint(),
                // host:port over TCP, unix:///path over a domain socket (InstanceEndpoint)
                e -> InstanceEndpoint.parse(e).channelBuilder(credentials, unixSecurity).build());
    }

    /**
     * FAILED_PRECONDITION is the instance refusing because of what it holds (an epoch neither prepared nor served to
     * commit, an epoch already held with other experts, an older one): an {@link InstanceRefusedException}, so the
     * coordinator can tell it from an instance that did not answer; marked {@link InstanceRefusedException#epochNumber()
     * epochNumber} when the status details carry the ErrorInfo reason EPOCH_NUMBER_REFUSED (expert.proto).
     */
    private static IllegalStateException failure(StatusRuntimeException e) {
        String message = e.getStatus().getCode() + (e.getStatus().getDescription() == null ? ""
                : " " + e.getStatus().getDescription());
        return e.getStatus().getCode() == Status.Code.FAILED_PRECONDITION
                ? new InstanceRefusedException(message, e, refusesTheEpochNumber(e))
                : new IllegalStateException(message, e);
    }

    /** Whether the status details of {@code e} carry expert.proto's ErrorInfo reason EPOCH_NUMBER_REFUSED. */
    private static boolean refusesTheEpochNumber(StatusRuntimeException e) {
        com.google.rpc.Status status = StatusProto.fromThrowable(e);
        if (status == null) {
            return false;
        }
        for (Any detail : status.getDetailsList()) {
            if (!detail.is(ErrorInfo.class)) {
                continue;
            }
            try {
                ErrorInfo info = detail.unpack(ErrorInfo.class);
                if (ERROR_DOMAIN.equals(info.getDomain()) && EPOCH_NUMBER_REFUSED.equals(info.getReason())) {
                    return true;
                }
            } catch (InvalidProtocolBufferException ignored) {
                // A detail that does not parse marks nothing: the refusal stands unmarked (it counts against the pod
                // unless its message is an older expert-service's epoch-number refusal).
            }
        }
        return false;
    }

    @Override
    public void close() {
        for (ManagedChannel ch : channels.values()) {
            ch.shutdownNow();
        }
    }
}
