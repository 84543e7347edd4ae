package io.moemesh.gateway.health;

import java.util.Map;

/**
 * One health component's verdict, as the actuator shows it and the gRPC health mirror reads it.
 *
 * @param up      whether the component lets the gateway serve
 * @param reason  one line saying why (names what is missing when down)
 * @param details what the verdict was made of, for the actuator JSON
 */
public record Check(boolean up, String reason, Map<String, Object> details) {
    public Check {
        details = Map.copyOf(details);
    }

    public static Check up(String reason, Map<String, Object> details) {
        return new Check(true, reason, details);
    }

    public static Check down(String reason, Map<String, Object> details) {
        return new Check(false, reason, details);
    }
}
