package io.moemesh.gateway.dispatch;

import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.StepContext;
import java.util.List;

/**
 * The gateway without expert-services (no placement file): experts computed in-process by {@code delegate}, and
 * the rows of traced prompt passes recorded as going to the one instance {@value #INSTANCE_ID} under epoch 0, as
 * gateway.proto's {@code InstanceDispatch.instance_id} says.
 */
public final class TracedLocalExperts implements ExpertDispatch {
    /** The instance id of experts computed in the gateway. */
    public static final String INSTANCE_ID = "local";
    private static final List<String> IDS = List.of(INSTANCE_ID);

    private final ExpertDispatch delegate;
    private final DispatchTraces traces;
    /** Every pair on instance 0; grown as needed (engine thread only). */
    private int[] local = new int[0];

    public TracedLocalExperts(ExpertDispatch delegate, DispatchTraces traces) {
        this.delegate = delegate;
        this.traces = traces;
    }

    @Override
    public void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                    float[] out) {
        delegate.run(step, layer, x, experts, weights, pairsPerToken, out);
        if (DispatchTraces.tracesAny(step)) {
            int pairs = step.rows() * pairsPerToken;
            if (local.length < pairs) {
                local = new int[pairs];
            }
            traces.record(step, layer, experts, pairsPerToken, local, IDS, 0);
        }
    }
}
