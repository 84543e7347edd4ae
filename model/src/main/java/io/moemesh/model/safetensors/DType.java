package io.moemesh.model.safetensors;

import java.util.Arrays;
import java.util.Optional;

/** Element types the engine computes with; other safetensors dtypes are recognised only to be refused. */
public enum DType {
    F32("F32", 4),
    BF16("BF16", 2),
    F16("F16", 2);

    private final String safetensorsName;
    private final int bytes;

    DType(String safetensorsName, int bytes) {
        this.safetensorsName = safetensorsName;
        this.bytes = bytes;
    }

    public String safetensorsName() {
        return safetensorsName;
    }

    /** Size of one element in bytes. */
    public int bytes() {
        return bytes;
    }

    public static Optional<DType> fromSafetensors(String name) {
        return Arrays.stream(values()).filter(d -> d.safetensorsName.equals(name)).findFirst();
    }

    /** The config.json spelling ({@code float32}, {@code bfloat16}, {@code float16}). */
    public static DType fromConfig(String torchName) {
        return switch (torchName) {
            case "bfloat16" -> BF16;
            case "float16" -> F16;
            default -> F32;
        };
    }
}
