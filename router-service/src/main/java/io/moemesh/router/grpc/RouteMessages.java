package io.moemesh.router.grpc;

import io.moemesh.proto.router.v1.LayerRoute;
import io.moemesh.proto.router.v1.TokenRoute;
import io.moemesh.router.reports.ReportedLayer;
import io.moemesh.router.reports.ReportedToken;
import java.util.ArrayList;
import java.util.List;

/** router.v1 routes as the domain's unvalidated {@link ReportedToken}s (uint32 read as unsigned). */
final class RouteMessages {
    private RouteMessages() {
    }

    static ReportedToken toReported(String requestId, TokenRoute route) {
        List<ReportedLayer> layers = new ArrayList<>(route.getLayersCount());
        for (LayerRoute lr : route.getLayersList()) {
            long[] experts = new long[lr.getExpertsCount()];
            for (int k = 0; k < experts.length; k++) {
                experts[k] = Integer.toUnsignedLong(lr.getExperts(k));
            }
            float[] weights = new float[lr.getWeightsCount()];
            for (int k = 0; k < weights.length; k++) {
                weights[k] = lr.getWeights(k);
            }
            layers.add(new ReportedLayer(Integer.toUnsignedLong(lr.getLayer()), experts, weights));
        }
        return new ReportedToken(requestId, Integer.toUnsignedLong(route.getPosition()), route.getTokenId(), layers);
    }
}
