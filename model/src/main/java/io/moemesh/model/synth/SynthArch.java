package io.moemesh.model.synth;

import io.moemesh.model.ModelFormatException;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** The MoE architectures a synthetic checkpoint can imitate, with their transformers names. */
public enum SynthArch {
    MIXTRAL("mixtral", "mixtral", "MixtralForCausalLM"),
    QWEN2_MOE("qwen2-moe", "qwen2_moe", "Qwen2MoeForCausalLM"),
    OLMOE("olmoe", "olmoe", "OlmoeForCausalLM");

    private final String cliName;
    private final String modelType;
    private final String hfClass;

    SynthArch(String cliName, String modelType, String hfClass) {
        this.cliName = cliName;
        this.modelType = modelType;
        this.hfClass = hfClass;
    }

    /** The {@code --arch} value, e.g. {@code qwen2-moe}. */
    public String cliName() {
        return cliName;
    }

    /** config.json {@code model_type}, e.g. {@code qwen2_moe}. */
    public String modelType() {
        return modelType;
    }

    /** config.json {@code architectures[0]}, e.g. {@code Qwen2MoeForCausalLM}. */
    public String hfClass() {
        return hfClass;
    }

    /** Parses an {@code --arch} value: the CLI name or the model_type, case-insensitive. */
    public static SynthArch parse(String value) {
        String v = value == null ? "" : value.trim().toLowerCase(Locale.ROOT);
        for (SynthArch arch : values()) {
            if (arch.cliName.equals(v) || arch.modelType.equals(v)) {
                return arch;
            }
        }
        throw new ModelFormatException("--arch " + value + " is not supported: use one of "
                + Arrays.stream(values()).map(SynthArch::cliName).collect(Collectors.joining(", ")));
    }
}
