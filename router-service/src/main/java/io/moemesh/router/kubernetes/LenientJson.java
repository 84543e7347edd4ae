package io.moemesh.router.kubernetes;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The members of a Kubernetes object's JSON the router uses, read from the plain JSON tree rather than through
 * client-java's generated models. Those models refuse a whole answer for any member they do not define
 * ({@code validateJsonElement} throws "The field `…` in the JSON string is not defined in the `V1PodStatus`
 * properties"; kubernetes-client/java#3428, #3980, #4809), and every Kubernetes release adds optional members
 * (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api_changes.md: adding a
 * field is a compatible change that old readers must ignore), so a router built against one client version would stop
 * seeing pods on the next cluster upgrade. Here members that are not asked for are never looked at; an absent member
 * and a JSON null are alike (absent, as Go's encoding/json writes omitempty and nil); a member asked for whose JSON
 * type is not the API's is a {@link Malformed} naming its path.
 */
final class LenientJson {
    private LenientJson() {
    }

    /** A member the router uses has another JSON type than the Kubernetes API defines for it. */
    static final class Malformed extends IllegalStateException {
        Malformed(String message) {
            super(message);
        }
    }

    /** {@code o.member}, or null when absent or JSON null. */
    private static JsonElement member(JsonObject o, String member) {
        JsonElement e = o == null ? null : o.get(member);
        return e == null || e.isJsonNull() ? null : e;
    }

    /** {@code o.member} as an object; null when absent. */
    static JsonObject object(JsonObject o, String member, String path) {
        JsonElement e = member(o, member);
        if (e != null && !e.isJsonObject()) {
            throw new Malformed(path + "." + member + " is not an object: " + brief(e));
        }
        return e == null ? null : e.getAsJsonObject();
    }

    /** {@code o.member} as a string; null when absent. */
    static String string(JsonObject o, String member, String path) {
        JsonElement e = member(o, member);
        if (e != null && !(e.isJsonPrimitive() && e.getAsJsonPrimitive().isString())) {
            throw new Malformed(path + "." + member + " is not a string: " + brief(e));
        }
        return e == null ? null : e.getAsString();
    }

    /** {@code o.member} as a 32-bit integer (the API's int32); null when absent. */
    static Integer integer(JsonObject o, String member, String path) {
        JsonElement e = member(o, member);
        if (e == null) {
            return null;
        }
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber()) {
            try {
                return e.getAsJsonPrimitive().getAsBigDecimal().intValueExact();
            } catch (ArithmeticException notAnInt) {
                // reported below
            }
        }
        throw new Malformed(path + "." + member + " is not a 32-bit integer: " + brief(e));
    }

    /** {@code o.member} as an array of objects; empty when absent. */
    static List<JsonObject> objects(JsonObject o, String member, String path) {
        JsonElement e = member(o, member);
        if (e == null) {
            return List.of();
        }
        if (!e.isJsonArray()) {
            throw new Malformed(path + "." + member + " is not an array: " + brief(e));
        }
        JsonArray a = e.getAsJsonArray();
        List<JsonObject> out = new ArrayList<>(a.size());
        for (int i = 0; i < a.size(); i++) {
            if (!a.get(i).isJsonObject()) {
                throw new Malformed(path + "." + member + "[" + i + "] is not an object: " + brief(a.get(i)));
            }
            out.add(a.get(i).getAsJsonObject());
        }
        return out;
    }

    /** {@code o.member} as a map of strings (labels, annotations, data); null when absent. */
    static Map<String, String> strings(JsonObject o, String member, String path) {
        JsonObject m = object(o, member, path);
        if (m == null) {
            return null;
        }
        Map<String, String> out = new HashMap<>();
        for (String key : m.keySet()) {
            String value = string(m, key, path + "." + member);
            if (value != null) {
                out.put(key, value);
            }
        }
        return out;
    }

    /** The start of {@code e} for a message: a malformed member may be large. */
    private static String brief(JsonElement e) {
        String s = e instanceof JsonPrimitive p && p.isString() ? "\"" + p.getAsString() + "\"" : e.toString();
        return s.length() <= 80 ? s : s.substring(0, 80) + "…";
    }
}
