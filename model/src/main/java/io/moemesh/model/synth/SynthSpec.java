package io.moemesh.model.synth;

import io.moemesh.model.ModelFormatException;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;

/**
 * Shape of a synthetic MoE checkpoint. The constructor validates; every violation is a
 * {@link ModelFormatException} naming the CLI flag, e.g. {@code --top-k 5 exceeds --experts 4}.
 *
 * @param intermediate       routed expert size (Mixtral intermediate_size, Qwen2-MoE moe_intermediate_size, OLMoE
 *                           intermediate_size)
 * @param headDim            empty: hidden / heads (config {@code head_dim} null or absent)
 * @param sharedIntermediate Qwen2-MoE shared expert size; empty: {@code intermediate}. Rejected for other archs.
 * @param seed               all values are a pure function of (seed, tensor name, element index)
 */
public record SynthSpec(
        SynthArch arch,
        int hidden,
        int intermediate,
        int layers,
        int experts,
        int topK,
        int heads,
        int kvHeads,
        int vocab,
        OptionalInt headDim,
        OptionalInt sharedIntermediate,
        SynthDtype dtype,
        int maxPosition,
        long seed) {

    public static final int DEFAULT_MAX_POSITION = 4096;
    public static final long DEFAULT_SEED = 0;

    public SynthSpec {
        if (arch == null) {
            throw new ModelFormatException("--arch is required");
        }
        if (dtype == null) {
            throw new ModelFormatException("--dtype is required (f32 or bf16)");
        }
        headDim = headDim == null ? OptionalInt.empty() : headDim;
        sharedIntermediate = sharedIntermediate == null ? OptionalInt.empty() : sharedIntermediate;
        positive("--hidden", hidden);
        positive("--intermediate", intermediate);
        positive("--layers", layers);
        positive("--experts", experts);
        positive("--top-k", topK);
        positive("--heads", heads);
        positive("--kv-heads", kvHeads);
        positive("--vocab", vocab);
        positive("--max-position", maxPosition);
        if (headDim.isPresent()) {
            positive("--head-dim", headDim.getAsInt());
        }
        if (sharedIntermediate.isPresent()) {
            positive("--shared-intermediate", sharedIntermediate.getAsInt());
            if (arch != SynthArch.QWEN2_MOE) {
                throw new ModelFormatException("--shared-intermediate applies only to --arch "
                        + SynthArch.QWEN2_MOE.cliName() + ", not " + arch.cliName());
            }
        }
        if (topK > experts) {
            throw new ModelFormatException("--top-k " + topK + " exceeds --experts " + experts);
        }
        if (heads % kvHeads != 0) {
            throw new ModelFormatException("--heads " + heads + " is not a multiple of --kv-heads " + kvHeads);
        }
        if (headDim.isEmpty() && hidden % heads != 0) {
            throw new ModelFormatException("--hidden " + hidden + " is not divisible by --heads " + heads
                    + " (or give --head-dim)");
        }
        if (arch == SynthArch.OLMOE && headDim.isPresent() && (long) headDim.getAsInt() * heads != hidden) {
            throw new ModelFormatException("--head-dim " + headDim.getAsInt() + " must equal --hidden / --heads ("
                    + hidden + " / " + heads + ") for --arch olmoe: its q_norm spans hidden_size");
        }
        int effective = headDim.orElse(hidden / heads);
        if (effective % 2 != 0) {
            throw new ModelFormatException((headDim.isPresent() ? "--head-dim " + effective
                    : "head dim --hidden / --heads = " + effective)
                    + " must be even: rotary embeddings rotate pairs of dimensions");
        }
    }

    /** A spec with the defaults: head_dim = hidden / heads, shared expert = intermediate, f32, 4096 positions, seed 0. */
    public static SynthSpec of(SynthArch arch, int hidden, int intermediate, int layers, int experts, int topK,
            int heads, int kvHeads, int vocab) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab,
                OptionalInt.empty(), OptionalInt.empty(), SynthDtype.F32, DEFAULT_MAX_POSITION, DEFAULT_SEED);
    }

    public SynthSpec withHeadDim(int value) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab,
                OptionalInt.of(value), sharedIntermediate, dtype, maxPosition, seed);
    }

    public SynthSpec withSharedIntermediate(int value) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab, headDim,
                OptionalInt.of(value), dtype, maxPosition, seed);
    }

    public SynthSpec withDtype(SynthDtype value) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab, headDim,
                sharedIntermediate, value, maxPosition, seed);
    }

    public SynthSpec withMaxPosition(int value) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab, headDim,
                sharedIntermediate, dtype, value, seed);
    }

    public SynthSpec withSeed(long value) {
        return new SynthSpec(arch, hidden, intermediate, layers, experts, topK, heads, kvHeads, vocab, headDim,
                sharedIntermediate, dtype, maxPosition, value);
    }

    /** The attention head size actually used: {@code headDim}, or hidden / heads. */
    public int effectiveHeadDim() {
        return headDim.orElse(hidden / heads);
    }

    /** Qwen2-MoE shared expert size: {@code sharedIntermediate}, or {@code intermediate}. */
    public int sharedExpertIntermediate() {
        return sharedIntermediate.orElse(intermediate);
    }

    /** The CLI flags that reproduce this spec, e.g. {@code [--arch, mixtral, --hidden, 64, ...]}. */
    public List<String> toCliArgs() {
        List<String> args = new ArrayList<>(List.of(
                "--arch", arch.cliName(),
                "--hidden", Integer.toString(hidden),
                "--intermediate", Integer.toString(intermediate),
                "--layers", Integer.toString(layers),
                "--experts", Integer.toString(experts),
                "--top-k", Integer.toString(topK),
                "--heads", Integer.toString(heads),
                "--kv-heads", Integer.toString(kvHeads),
                "--vocab", Integer.toString(vocab)));
        headDim.ifPresent(v -> args.addAll(List.of("--head-dim", Integer.toString(v))));
        sharedIntermediate.ifPresent(v -> args.addAll(List.of("--shared-intermediate", Integer.toString(v))));
        args.addAll(List.of(
                "--dtype", dtype.cliName(),
                "--max-position", Integer.toString(maxPosition),
                "--seed", Long.toString(seed)));
        return List.copyOf(args);
    }

    private static void positive(String flag, int value) {
        if (value <= 0) {
            throw new ModelFormatException(flag + " must be positive, got " + value);
        }
    }
}
