package io.moemesh.router.prediction;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/** The predictors by name: {@value #DEFAULT} (the best on the traces, docs/performance.md) and the others. */
public final class PathPredictors {

    /** The default predictor's name. */
    public static final String DEFAULT = "learned";

    private static final Map<String, Function<ModelShape, PathPredictor>> BY_NAME = new LinkedHashMap<>();

    static {
        BY_NAME.put("learned", LearnedPredictor::new);
        BY_NAME.put("transitions", TransitionPredictor::new);
        BY_NAME.put("pooled", PooledPredictor::new);
        BY_NAME.put("token", TokenPredictor::new);
        BY_NAME.put("popularity", PopularityPredictor::new);
    }

    private PathPredictors() {
    }

    /** The names, the default first. */
    public static List<String> names() {
        return List.copyOf(BY_NAME.keySet());
    }

    /** A new, untrained predictor called {@code name} for a model of {@code shape}. */
    public static PathPredictor named(String name, ModelShape shape) {
        Function<ModelShape, PathPredictor> factory = name == null ? null : BY_NAME.get(name);
        if (factory == null) {
            throw new IllegalArgumentException("unknown predictor '" + name + "' (known: "
                    + String.join(", ", BY_NAME.keySet()) + ")");
        }
        return factory.apply(shape);
    }
}
