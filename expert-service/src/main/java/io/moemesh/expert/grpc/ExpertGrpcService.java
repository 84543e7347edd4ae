package io.moemesh.expert.grpc;

import io.grpc.BindableService;
import io.grpc.ServerInterceptors;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.opentelemetry.api.OpenTelemetry;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.LoadResult;
import io.moemesh.expert.assignment.PlacerPolicy;
import io.moemesh.expert.assignment.PrefetchResult;
import io.moemesh.expert.assignment.Prefetcher;
import io.moemesh.expert.backend.BackendFaults;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.batch.BatchProcessor;
import io.moemesh.expert.batch.LoadTracker;
import io.moemesh.expert.metrics.ExpertMetrics;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.InstanceLoad;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.expert.v1.PrefetchResponse;
import io.moemesh.service.expert.ExpertBatchWire;
import io.moemesh.service.grpc.OpenStreams;
import io.moemesh.service.grpc.RequestParsingGuard;
import io.moemesh.service.grpc.TensorMessage;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * moemesh.expert.v1.ExpertService over the domain objects; errors become statuses through StatusMapping.
 * LoadAssignment is only for the placer identities ({@link PlacerPolicy}; the caller's identity comes from its
 * certificate through {@link PeerIdentityInterceptor}); the other calls are open to every member of the mesh.
 */
public final class ExpertGrpcService implements ExpertServiceGrpc.AsyncService, BindableService {
    private static final Logger log = LoggerFactory.getLogger(ExpertGrpcService.class);

    /** Identity reported by DescribeInstance. */
    public record Identity(String instanceId, int deviceSlot, String backend) {
    }

    private final Identity identity;
    private final ExpertModel model;
    private final AssignmentManager assignments;
    private final ResidentSet resident;
    private final Prefetcher prefetcher;
    private final BatchProcessor processor;
    private final LoadTracker load;
    private final ExpertMetrics metrics;
    private final int streamWindow;
    private final OpenTelemetry otel;
    private final PlacerPolicy placers;
    /** The open ExpertBatch streams, ended at the service's stop ({@link ExpertBatchShutdown}). */
    private final OpenStreams<BatchStream> batchStreams = new OpenStreams<>();
    /**
     * What a stream ends with at the stop: UNAVAILABLE, which the gateway's client treats like a lost instance (the
     * calls it sent on the stream and that were not answered fail with it, and its dispatcher sends them to another
     * replica).
     */
    private final Status batchShutdown;

    /** Untraced. */
    public ExpertGrpcService(Identity identity, ExpertModel model, AssignmentManager assignments, ResidentSet resident,
                             Prefetcher prefetcher, BatchProcessor processor, LoadTracker load, ExpertMetrics metrics,
                             int streamWindow, PlacerPolicy placers) {
        this(identity, model, assignments, resident, prefetcher, processor, load, metrics, streamWindow,
                OpenTelemetry.noop(), placers);
    }

    /**
     * With tracing: each message's span joins the trace whose context the gateway put in the message.
     *
     * @param placers who may call LoadAssignment
     */
    public ExpertGrpcService(Identity identity, ExpertModel model, AssignmentManager assignments, ResidentSet resident,
                             Prefetcher prefetcher, BatchProcessor processor, LoadTracker load, ExpertMetrics metrics,
                             int streamWindow, OpenTelemetry otel, PlacerPolicy placers) {
        this.otel = otel;
        this.placers = placers;
        this.identity = identity;
        this.model = model;
        this.assignments = assignments;
        this.resident = resident;
        this.prefetcher = prefetcher;
        this.processor = processor;
        this.load = load;
        this.metrics = metrics;
        this.streamWindow = streamWindow;
        this.batchShutdown = Status.UNAVAILABLE.withDescription("expert-service " + identity.instanceId()
                + " shutting down");
    }

    /**
     * The generated service with ExpertBatch served through {@link ExpertBatchWire}'s zero-copy marshallers: the
     * activations are decoded from gRPC's received buffers into the batch's float array, the outputs written
     * from the result's float array into gRPC's buffers. Same method name, same wire format.
     */
    @Override
    public ServerServiceDefinition bindService() {
        ServerServiceDefinition generated = ExpertServiceGrpc.bindService(this);
        ServiceDescriptor sd = generated.getServiceDescriptor();
        ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(sd.getName())
                .setSchemaDescriptor(sd.getSchemaDescriptor());
        ServerServiceDefinition.Builder out = null;
        for (ServerMethodDefinition<?, ?> m : generated.getMethods()) {
            descriptor.addMethod(m.getMethodDescriptor().getFullMethodName().equals(ExpertBatchWire.METHOD.getFullMethodName())
                    ? ExpertBatchWire.METHOD : m.getMethodDescriptor());
        }
        out = ServerServiceDefinition.builder(descriptor.build());
        for (ServerMethodDefinition<?, ?> m : generated.getMethods()) {
            if (m.getMethodDescriptor().getFullMethodName().equals(ExpertBatchWire.METHOD.getFullMethodName())) {
                out.addMethod(ExpertBatchWire.METHOD, ServerCalls.asyncBidiStreamingCall(this::expertBatchStream));
            } else {
                out.addMethod(m);
            }
        }
        // Every server of this service maps the arenas same-host callers offer (TensorArenaInterceptor), parses
        // requests in RequestParsingGuard (GrpcServerLifecycle's guard then leaves it as it is) and counts the
        // calls the guard ends (ExpertBatch streams, control calls) in errors_total; the handlers count their own.
        ServerServiceDefinition handlers = ServerInterceptors.intercept(out.build(), new TensorArenaInterceptor());
        return RequestParsingGuard.guard(handlers, null, null, status -> metrics.error(status.getCode().name()));
    }

    private StreamObserver<TensorMessage<ExpertBatchRequest>> expertBatchStream(
            StreamObserver<TensorMessage<ExpertBatchResponse>> responses) {
        BatchStream stream = new BatchStream((ServerCallStreamObserver<TensorMessage<ExpertBatchResponse>>) responses,
                processor, metrics, load, assignments::servingEpoch, model.hiddenSize(), streamWindow, otel,
                TensorArenaInterceptor.current(), batchStreams, batchShutdown);
        if (batchStreams.register(stream)) {
            stream.start();
        } else {
            stream.refuse();
        }
        return stream;
    }

    /** The open ExpertBatch streams, ended at stop by {@link ExpertBatchShutdown}; a new one is refused meanwhile. */
    OpenStreams<BatchStream> batchStreams() {
        return batchStreams;
    }

    @Override
    public void prefetch(PrefetchRequest req, StreamObserver<PrefetchResponse> obs) {
        unary(obs, "Prefetch", () -> {
            PrefetchResult r = prefetcher.prefetch(req.getPlacementEpoch(), ProtoMapping.toPairs(req.getExpertsList()));
            return PrefetchResponse.newBuilder().setQueued(r.queued()).setAlreadyResident(r.alreadyResident())
                    .setIgnored(r.ignored()).build();
        });
    }

    @Override
    public void loadAssignment(LoadAssignmentRequest req, StreamObserver<LoadAssignmentResponse> obs) {
        unary(obs, "LoadAssignment", () -> {
            placers.checkMayPlace(PeerIdentityInterceptor.current().map(MeshIdentity::name));
            AssignmentStage stage = req.getStage();
            long started = System.nanoTime();
            LoadResult r = switch (stage) {
                case ASSIGNMENT_STAGE_UNSPECIFIED, ASSIGNMENT_STAGE_PREPARE -> {
                    List<ExpertKey> keys = ProtoMapping.toKeys(req.getExpertsList(), model);
                    yield stage == AssignmentStage.ASSIGNMENT_STAGE_PREPARE
                            ? assignments.prepare(req.getInstanceId(), req.getEpoch(), keys)
                            : assignments.load(req.getInstanceId(), req.getEpoch(), keys);
                }
                case ASSIGNMENT_STAGE_COMMIT, ASSIGNMENT_STAGE_ABORT -> {
                    if (req.getExpertsCount() > 0) {
                        throw new IllegalArgumentException("experts: must be empty for " + stage + " (got "
                                + req.getExpertsCount() + "): the prepared assignment is " + (stage
                                == AssignmentStage.ASSIGNMENT_STAGE_COMMIT ? "committed" : "dropped") + " as prepared");
                    }
                    yield stage == AssignmentStage.ASSIGNMENT_STAGE_COMMIT
                            ? assignments.commit(req.getInstanceId(), req.getEpoch())
                            : assignments.abort(req.getInstanceId(), req.getEpoch());
                }
                default -> throw new IllegalArgumentException("stage: unknown AssignmentStage value "
                        + req.getStageValue() + " (UNSPECIFIED, PREPARE, COMMIT or ABORT)");
            };
            log.info("LoadAssignment {} epoch {}: serving epoch {}, prepared {}, {} experts of epoch {} resident, {} "
                    + "bytes resident, after {} ms", stageName(stage), Long.toUnsignedString(r.epoch()),
                    Long.toUnsignedString(r.servingEpoch()), Long.toUnsignedString(r.preparedEpoch()), r.loadedCount(),
                    Long.toUnsignedString(r.epoch()), r.residentBytes(), (System.nanoTime() - started) / 1_000_000);
            return LoadAssignmentResponse.newBuilder().setEpoch(r.epoch()).setLoadedCount(r.loadedCount())
                    .setResidentBytes(r.residentBytes()).setServingEpoch(r.servingEpoch())
                    .setPreparedEpoch(r.preparedEpoch()).build();
        });
    }

    private static String stageName(AssignmentStage stage) {
        return switch (stage) {
            case ASSIGNMENT_STAGE_UNSPECIFIED -> "load";
            case ASSIGNMENT_STAGE_PREPARE -> "prepare";
            case ASSIGNMENT_STAGE_COMMIT -> "commit";
            default -> "abort";
        };
    }

    @Override
    public void describeInstance(DescribeInstanceRequest req, StreamObserver<DescribeInstanceResponse> obs) {
        unary(obs, "DescribeInstance", () -> {
            Assignment a = assignments.current();
            List<ExpertRef> residentRefs = resident.residentExperts().stream().map(ProtoMapping::toRef).toList();
            return DescribeInstanceResponse.newBuilder().setInstanceId(identity.instanceId())
                    .setDeviceSlot(identity.deviceSlot()).setMemoryBudgetBytes(resident.budgetBytes())
                    .setResidentBytes(resident.residentBytes()).setEpoch(a.epoch())
                    .addAllResidentExperts(residentRefs)
                    .addAllAssignedExperts(a.experts().stream().map(ProtoMapping::toRef).toList())
                    .setLoad(InstanceLoad.newBuilder().setInFlightBatches(load.inFlightBatches())
                            .setTokensPerSecond(load.tokensPerSecond()).setOpenStreams(load.openStreams()))
                    .setBackend(identity.backend()).setModel(model.name())
                    .setPreparedEpoch(assignments.preparedEpoch()).build();
        });
    }

    private <T> void unary(StreamObserver<T> obs, String method, Supplier<T> body) {
        T response;
        try {
            response = body.get();
        } catch (RuntimeException | Error e) {
            if (e instanceof Error err && BackendFaults.fatal(err)) {
                throw err; // the VM's state, not this call's (an OutOfMemoryError ends the service)
            }
            // Any other Error is this call's (an InternalError from a truncated weights file's load): answered like
            // any failure, INTERNAL through StatusMapping, counted and logged; escaping, gRPC would close the call
            // with UNKNOWN, unmapped and uncounted.
            com.google.rpc.Status status = ProtoMapping.toRpcStatus(e);
            Status.Code code = Status.fromCodeValue(status.getCode()).getCode();
            metrics.error(code.name());
            if (code == Status.Code.INTERNAL) {
                log.error("{} failed", method, e);
            } else {
                log.info("{} refused: {} {}", method, code, status.getMessage());
            }
            obs.onError(StatusProto.toStatusRuntimeException(status));
            return;
        }
        obs.onNext(response);
        obs.onCompleted();
    }
}
