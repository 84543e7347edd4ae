package io.moemesh.router.support;

import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.reports.ReportedLayer;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import java.util.ArrayList;
import java.util.List;

/** Route books and reported tokens of the tiny Mixtral the tests use (4 layers, 8 experts, top-2). */
public final class TestRoutes {
    public static final ModelShape SHAPE = new ModelShape(4, 8, 2);

    private TestRoutes() {
    }

    public static RouteBook book(int window) {
        return new RouteBook(SHAPE, PathPredictors.named(PathPredictors.DEFAULT, SHAPE), window);
    }

    /** A token whose experts at layer l are {(seed + l) % 8, (seed + l + 1) % 8}: a learnable pattern. */
    public static ReportedToken token(String request, int position, int seed) {
        List<ReportedLayer> layers = new ArrayList<>();
        for (int l = 0; l < SHAPE.layers(); l++) {
            layers.add(new ReportedLayer(l, new long[] {(seed + l) % 8, (seed + l + 1) % 8}, new float[] {0.6f, 0.3f}));
        }
        return new ReportedToken(request, position, 7, layers);
    }
}
