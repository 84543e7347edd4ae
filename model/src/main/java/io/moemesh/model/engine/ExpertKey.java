package io.moemesh.model.engine;

/** An expert of one layer; {@code expert == numExperts} names the shared expert of Qwen2-MoE. */
public record ExpertKey(int layer, int expert) implements Comparable<ExpertKey> {

    @Override
    public int compareTo(ExpertKey o) {
        return layer != o.layer ? Integer.compare(layer, o.layer) : Integer.compare(expert, o.expert);
    }

    @Override
    public String toString() {
        return "layer " + layer + " expert " + expert;
    }
}
