package io.moemesh.cli.mesh;

import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.DescribeRouterRequest;
import io.moemesh.proto.router.v1.DescribeRouterResponse;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.proto.router.v1.PlacementSummary;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.ReplanResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Path;

/**
 * The router-service's Describe and Replan in the fake service jars of {@link FakeHome}: the placement file is the
 * state, as for the real router (a replan writes the next epoch of the same placement to it, planner "even").
 */
public final class FakeRouter extends RouterServiceGrpc.RouterServiceImplBase {
    private final Path placementFile;

    public FakeRouter(Path placementFile) {
        this.placementFile = placementFile;
    }

    @Override
    public synchronized void describeRouter(DescribeRouterRequest req, StreamObserver<DescribeRouterResponse> obs) {
        Placement p = PlacementFiles.read(placementFile);
        obs.onNext(DescribeRouterResponse.newBuilder().setPlacementEpoch(p.getEpoch()).setPlanner("affinity")
                .setPredictor("learned").setInstances(p.getInstancesCount()).build());
        obs.onCompleted();
    }

    @Override
    public synchronized void replan(ReplanRequest req, StreamObserver<ReplanResponse> obs) {
        Placement p = PlacementFiles.read(placementFile);
        Placement next = p.toBuilder().setEpoch(p.getEpoch() + 1).build();
        PlacementFiles.write(placementFile, next);
        obs.onNext(ReplanResponse.newBuilder().setEpoch(next.getEpoch()).setPlanner("even").setApplied(true)
                .setSummary(PlacementSummary.newBuilder().setInstances(next.getInstancesCount())).setPublishMillis(1)
                .build());
        obs.onCompleted();
    }
}
