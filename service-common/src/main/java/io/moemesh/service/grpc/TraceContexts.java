package io.moemesh.service.grpc;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.context.propagation.TextMapPropagator;
import java.util.HashMap;
import java.util.Map;

/**
 * W3C trace context in a message's {@code trace_context} map (the ExpertBatch stream carries many steps, so
 * context travels per message, not in call metadata), through the configured OpenTelemetry propagators.
 */
public final class TraceContexts {
    private static final TextMapGetter<Map<String, String>> GETTER = new TextMapGetter<>() {
        @Override
        public Iterable<String> keys(Map<String, String> carrier) {
            return carrier.keySet();
        }

        @Override
        public String get(Map<String, String> carrier, String key) {
            return carrier == null ? null : carrier.get(key);
        }
    };

    private final TextMapPropagator propagator;

    public TraceContexts(OpenTelemetry otel) {
        this.propagator = otel.getPropagators().getTextMapPropagator();
    }

    /** The current context's trace headers (empty when nothing is traced). */
    public Map<String, String> inject(Context context) {
        Map<String, String> out = new HashMap<>();
        propagator.inject(context, out, (carrier, key, value) -> carrier.put(key, value));
        return out;
    }

    public Context extract(Map<String, String> carrier) {
        return propagator.extract(Context.root(), carrier, GETTER);
    }
}
