package io.moemesh.cli;

import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a random-weight checkpoint of an MoE architecture (published tensor names, the tiny "
                + "models' tokenizer) for tests, benchmarks and capacity planning.")
final class SynthCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--arch", required = true, description = "mixtral, qwen2_moe or olmoe.")
    String arch;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output model directory.")
    Path out;

    @Option(names = "--hidden", required = true, description = "hidden_size.")
    int hidden;

    @Option(names = "--intermediate", required = true, description = "Inner size of one routed expert.")
    int intermediate;

    @Option(names = "--layers", required = true, description = "num_hidden_layers.")
    int layers;

    @Option(names = "--experts", required = true, description = "Routed experts per layer.")
    int experts;

    @Option(names = "--top-k", required = true, description = "num_experts_per_tok.")
    int topK;

    @Option(names = "--heads", required = true, description = "num_attention_heads.")
    int heads;

    @Option(names = "--kv-heads", required = true, description = "num_key_value_heads.")
    int kvHeads;

    @Option(names = "--vocab", required = true, description = "vocab_size (≥ 512, the bundled tokenizer's).")
    int vocab;

    @Option(names = "--head-dim", description = "head_dim (default hidden / heads).")
    Integer headDim;

    @Option(names = "--shared-intermediate", description = "qwen2_moe: shared expert size (default --intermediate).")
    Integer sharedIntermediate;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32 or bf16 (default ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--max-position", defaultValue = "4096", description = "max_position_embeddings (default ${DEFAULT-VALUE}).")
    int maxPosition;

    @Option(names = "--seed", defaultValue = "0", description = "Weights are a pure function of the seed.")
    long seed;

    @Override
    public Integer call() throws IOException {
        SynthSpec s = new SynthSpec(SynthArch.parse(arch), hidden, intermediate, layers, experts, topK, heads, kvHeads,
                vocab, headDim == null ? OptionalInt.empty() : OptionalInt.of(headDim),
                sharedIntermediate == null ? OptionalInt.empty() : OptionalInt.of(sharedIntermediate),
                SynthDtype.parse(dtype), maxPosition, seed);
        long t0 = System.nanoTime();
        SyntheticCheckpoint.write(s, out, "moemesh synth " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
        spec.commandLine().getErr().printf("moemesh synth: wrote %s in %d ms%n", out, (System.nanoTime() - t0) / 1_000_000);
        spec.commandLine().getOut().println(out.toAbsolutePath());
        return 0;
    }
}
