package io.moemesh.model.synth;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.safetensors.DType;
import java.util.Locale;

/** Storage type of a synthetic checkpoint's weights. */
public enum SynthDtype {
    F32("f32", "float32", DType.F32),
    BF16("bf16", "bfloat16", DType.BF16);

    private final String cliName;
    private final String configName;
    private final DType tensorDtype;

    SynthDtype(String cliName, String configName, DType tensorDtype) {
        this.cliName = cliName;
        this.configName = configName;
        this.tensorDtype = tensorDtype;
    }

    /** The {@code --dtype} value: {@code f32} or {@code bf16}. */
    public String cliName() {
        return cliName;
    }

    /** config.json {@code dtype}: {@code float32} or {@code bfloat16}. */
    public String configName() {
        return configName;
    }

    public DType tensorDtype() {
        return tensorDtype;
    }

    /** Parses a {@code --dtype} value: f32|float32|bf16|bfloat16, case-insensitive. */
    public static SynthDtype parse(String value) {
        String v = value == null ? "" : value.trim().toLowerCase(Locale.ROOT);
        for (SynthDtype dtype : values()) {
            if (dtype.cliName.equals(v) || dtype.configName.equals(v)) {
                return dtype;
            }
        }
        throw new ModelFormatException("--dtype " + value + " is not supported: use f32 or bf16");
    }
}
