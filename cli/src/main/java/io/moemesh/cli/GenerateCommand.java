package io.moemesh.cli;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continue a prompt with the reference engine (--model) and stream the text to stdout.")
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "Hugging Face model directory (config.json, tokenizer.json, safetensors).")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    PromptSource prompt;

    static final class PromptSource {
        @Option(names = "--prompt", paramLabel = "TEXT", description = "The prompt text.")
        String text;

        @Option(names = "--prompt-file", paramLabel = "FILE", description = "Read the prompt from a UTF-8 file.")
        Path file;
    }

    @Option(names = "--max-tokens", defaultValue = "16", description = "Tokens to generate at most (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy (default); > 0 samples.")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1", description = "Nucleus sampling mass in (0, 1] (default ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Sample among the k most likely tokens; 0 = all.")
    int topK;

    @Option(names = "--seed", description = "Seed of this request's sampler (reproducible sampling).")
    Long seed;

    @Option(names = "--json", description = "Print one JSON object as the last line: input_ids, generated_ids, text.")
    boolean json;

    @Option(names = "--trace", description = "With --json: add last_logits and router_topk [layer][position][k].")
    boolean trace;

    @Override
    public Integer call() throws IOException {
        String text = promptText();
        SamplingParams params = new SamplingParams(temperature, topP, topK,
                seed == null ? OptionalLong.empty() : OptionalLong.of(seed), maxTokens, false);
        long t0 = System.nanoTime();
        PrintWriter err = spec.commandLine().getErr();
        try (MoeModel m = MoeModel.open(model)) {
            var c = m.config();
            err.printf("moemesh: loaded %s (%s, %d layers, %d experts, top-%d, %s) in %d ms%n", model.getFileName(),
                    c.architecture().modelType(), c.numLayers(), c.numExperts(), c.topK(), c.dtype(),
                    (System.nanoTime() - t0) / 1_000_000);
            err.flush();
            int[] ids = m.encodePrompt(text);
            if (ids.length >= c.maxPositionEmbeddings()) {
                throw new ModelFormatException("--prompt: " + ids.length + " tokens exceed max_position_embeddings "
                        + c.maxPositionEmbeddings() + " of " + model.resolve("config.json"));
            }
            int total = Math.min(c.maxPositionEmbeddings(), ids.length + maxTokens);
            Generator generator = new Generator(m.localEngine(), m.newCache(total), 512);
            PrintWriter out = spec.commandLine().getOut();
            TextStream stream = new TextStream(m.tokenizer(), out, !json);
            GenerationResult r = generator.generate(
                    List.of(new GenerationRequest(ids, params, trace)), (i, token) -> stream.accept(token)).getFirst();
            stream.finish();
            if (json) {
                out.println(GenerationJson.of(r, m.tokenizer().decode(r.generatedIds(), true), trace));
            }
            out.flush();
        }
        return 0;
    }

    private String promptText() throws IOException {
        if (prompt.file == null) {
            return prompt.text;
        }
        if (!Files.isRegularFile(prompt.file)) {
            throw new ModelFormatException("--prompt-file " + prompt.file + ": file not found");
        }
        return Files.readString(prompt.file, StandardCharsets.UTF_8);
    }
}
