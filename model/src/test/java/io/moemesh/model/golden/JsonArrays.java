package io.moemesh.model.golden;

import tools.jackson.databind.JsonNode;

/** JSON arrays of the golden files and of the CLI's {@code --json} line as Java arrays (null stays null). */
public final class JsonArrays {
    private JsonArrays() {
    }

    public static int[] ints(JsonNode n) {
        return n == null || n.isNull() ? null : n.valueStream().mapToInt(JsonNode::intValue).toArray();
    }

    public static float[] floats(JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        float[] out = new float[n.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = n.get(i).floatValue();
        }
        return out;
    }

    /** {@code [layer][position][k]} router choices. */
    public static int[][][] routes(JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        int[][][] out = new int[n.size()][][];
        for (int l = 0; l < out.length; l++) {
            out[l] = new int[n.get(l).size()][];
            for (int p = 0; p < out[l].length; p++) {
                out[l][p] = ints(n.get(l).get(p));
            }
        }
        return out;
    }
}
