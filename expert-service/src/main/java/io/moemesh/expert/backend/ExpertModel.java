package io.moemesh.expert.backend;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.safetensors.TensorStore;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The model whose experts this instance serves: its config (sizes, expert counts) and its lazily mapped
 * checkpoint. Opening it reads only {@code config.json} and the safetensors headers; expert tensors are
 * touched when an expert is loaded, so the experts of other instances are never read.
 *
 * @param name the model directory's name (what DescribeInstance reports)
 */
public record ExpertModel(String name, ModelConfig config, TensorStore store) implements AutoCloseable {

    public static ExpertModel open(Path dir) {
        Path abs = dir.toAbsolutePath().normalize();
        if (!Files.isDirectory(abs)) {
            throw new IllegalArgumentException("model directory " + abs + " does not exist or is not a directory");
        }
        ModelConfig config = ModelConfigReader.read(abs);
        return new ExpertModel(abs.getFileName().toString(), config, TensorStore.open(abs));
    }

    public int hiddenSize() {
        return config.hiddenSize();
    }

    public int numLayers() {
        return config.numLayers();
    }

    /** Routed experts plus the Qwen2-MoE shared expert (id {@code numExperts}). */
    public int dispatchableExperts() {
        return config.dispatchableExperts();
    }

    /** Every supported architecture has a MoE block in every layer, so "MoE layer" = "layer". */
    public void checkLayer(int layer) {
        if (layer < 0 || layer >= config.numLayers()) {
            throw new IllegalArgumentException("layer " + Integer.toUnsignedString(layer) + " does not exist (model "
                    + name + " has MoE layers 0.." + (config.numLayers() - 1) + ")");
        }
    }

    /** Throws IllegalArgumentException naming the layer and expert when either is out of range. */
    public ExpertKey key(int layer, int expert) {
        checkLayer(layer);
        if (expert < 0 || expert >= config.dispatchableExperts()) {
            throw new IllegalArgumentException("layer " + layer + " expert " + Integer.toUnsignedString(expert)
                    + " does not exist (model " + name + " has expert ids 0.." + (config.dispatchableExperts() - 1)
                    + (config.hasSharedExpert() ? ", " + config.numExperts() + " being the shared expert)" : ")"));
        }
        return new ExpertKey(layer, expert);
    }

    @Override
    public void close() {
        store.close();
    }
}
