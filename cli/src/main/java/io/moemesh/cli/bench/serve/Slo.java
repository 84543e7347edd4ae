package io.moemesh.cli.bench.serve;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Service level objectives for goodput, vLLM's {@code --goodput ttft:MS tpot:MS e2el:MS}: a request is good when
 * every given metric is at or under its bound (vLLM: {@code all(s >= r for s, r in zip(slo_values, req_metric))}).
 * Bounds are milliseconds.
 */
public record Slo(Map<String, Double> boundsMs) {
    private static final List<String> NAMES = List.of("ttft", "tpot", "e2el");

    public Slo {
        boundsMs = Map.copyOf(boundsMs);
    }

    public static Slo none() {
        return new Slo(Map.of());
    }

    /** Parses {@code KEY:VALUE} pairs; keys ttft, tpot, e2el; values non-negative milliseconds. */
    public static Slo parse(List<String> pairs) {
        Map<String, Double> bounds = new LinkedHashMap<>();
        for (String pair : pairs == null ? List.<String>of() : pairs) {
            String[] kv = pair.split(":", -1);
            if (kv.length != 2) {
                throw new IllegalArgumentException("--goodput " + pair + ": expected KEY:VALUE with KEY one of "
                        + NAMES + " and VALUE in milliseconds");
            }
            String key = kv[0].strip().toLowerCase(java.util.Locale.ROOT);
            if (!NAMES.contains(key)) {
                throw new IllegalArgumentException("--goodput " + pair + ": unknown metric " + kv[0]
                        + ", expected one of " + NAMES);
            }
            double value;
            try {
                value = Double.parseDouble(kv[1].strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--goodput " + pair + ": " + kv[1]
                        + " is not a number of milliseconds");
            }
            if (!(value >= 0) || Double.isInfinite(value)) {
                throw new IllegalArgumentException("--goodput " + pair + ": the bound must be a finite number ≥ 0");
            }
            bounds.put(key, value);
        }
        return new Slo(bounds);
    }

    public boolean isEmpty() {
        return boundsMs.isEmpty();
    }

    /** Whether a successful request meets every bound (TPOT is 0 for a request with one output token). */
    public boolean met(RequestOutcome r) {
        return within("ttft", r.ttftNanos()) && within("tpot", r.tpotNanos()) && within("e2el", r.latencyNanos());
    }

    private boolean within(String name, double nanos) {
        Double bound = boundsMs.get(name);
        return bound == null || bound * 1e6 >= nanos;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder();
        for (String n : NAMES) {
            if (boundsMs.containsKey(n)) {
                s.append(s.isEmpty() ? "" : " ").append(n).append(':').append(boundsMs.get(n).toString()
                        .replaceAll("\\.0$", ""));
            }
        }
        return s.toString();
    }
}
