package io.moemesh.router.discovery;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * An equality-based Kubernetes label selector, {@code key=value[,key=value...]} ({@code ==} accepted): what the chart
 * renders for the expert-service pods. The API server filters by it; the router checks every pod it is handed against
 * it again, so a pod whose labels do not match is ignored with a reason whatever the server did.
 */
public record LabelSelector(Map<String, String> required) {
    public LabelSelector {
        required = Collections.unmodifiableMap(new TreeMap<>(required));
    }

    /**
     * @param selector {@code key=value} pairs separated by commas
     * @throws IllegalArgumentException naming the bad term (set-based terms such as {@code in (...)} or {@code !key}
     *                                  are not supported)
     */
    public static LabelSelector parse(String selector) {
        if (selector == null || selector.isBlank()) {
            throw new IllegalArgumentException("must not be blank: key=value pairs separated by commas");
        }
        Map<String, String> m = new LinkedHashMap<>();
        for (String term : selector.split(",")) {
            String t = term.strip();
            int eq = t.indexOf('=');
            String key = eq < 0 ? "" : t.substring(0, eq).strip();
            String value = eq < 0 ? "" : t.substring(t.startsWith("==", eq) ? eq + 2 : eq + 1).strip();
            if (eq <= 0 || t.startsWith("!=", eq - 1) || key.endsWith("!") || !key.matches("[A-Za-z0-9./_-]+")
                    || !value.matches("[A-Za-z0-9._-]*")) {
                throw new IllegalArgumentException("\"" + t + "\" is not an equality term key=value (only those are "
                        + "supported)");
            }
            if (m.put(key, value) != null) {
                throw new IllegalArgumentException("label " + key + " is selected twice");
            }
        }
        return new LabelSelector(m);
    }

    public boolean matches(Map<String, String> labels) {
        return required.entrySet().stream().allMatch(e -> e.getValue().equals(labels.get(e.getKey())));
    }

    /** The selector as the API's {@code labelSelector} parameter. */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder();
        required.forEach((k, v) -> b.append(b.isEmpty() ? "" : ",").append(k).append('=').append(v));
        return b.toString();
    }
}
