package io.moemesh.gateway.dispatch;

import java.util.List;

/**
 * Where one traced request's prompt pass went, all prefill chunks together: the trace's {@code dispatch} and
 * {@code placement_epoch} (gateway.proto {@code TraceInfo}).
 *
 * @param epoch  the placement epoch its prompt rows were dispatched under (of the last chunk, should an epoch
 *               switch fall between chunks); 0 when experts ran in the gateway
 * @param layers ascending by layer; a layer none of its rows reached an expert at is absent
 */
public record PromptDispatch(long epoch, List<LayerDispatchRecord> layers) {
    /** Nothing recorded: an untraced request, or a record that was not kept. */
    public static final PromptDispatch NONE = new PromptDispatch(0, List.of());

    public PromptDispatch {
        layers = List.copyOf(layers);
    }
}
