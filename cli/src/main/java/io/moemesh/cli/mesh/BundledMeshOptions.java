package io.moemesh.cli.mesh;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * {@code --model}, {@code --experts}, {@code --replicas} of the commands that start a mesh of their own on the bundled
 * tiny model ({@code demo}, {@code chaos}): three instances holding every expert twice, so one can die.
 */
public final class BundledMeshOptions {
    public static final String DEFAULT_MODEL = "models/mixtral-tiny-bf16";

    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face model directory (default " + DEFAULT_MODEL + ", bundled).")
    Path model;

    @Option(names = "--experts", defaultValue = "3", paramLabel = "N",
            description = "Expert-service instances (default ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--replicas", defaultValue = "2", paramLabel = "R",
            description = "Instances holding each expert (default ${DEFAULT-VALUE}).")
    int replicas;

    /** The model directory: the option, or the bundled model under the repository root. */
    public Path model(MeshHome home) {
        return model != null ? model : home.root().resolve(DEFAULT_MODEL);
    }

    public int experts() {
        return experts;
    }

    public int replicas() {
        return replicas;
    }
}
