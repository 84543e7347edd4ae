package io.moemesh.cli;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
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
        description = "Continue a prompt with the reference engine in this process (--model) or with a running mesh "
                + "(--endpoint, the gateway's gRPC address) and stream the text to stdout.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:done",
            "1:unexpected failure, or another gRPC status from the gateway",
            "2:bad input: usage, files, parameters; INVALID_ARGUMENT from the gateway",
            "3:UNAVAILABLE: the gateway is unreachable, no replica of a needed expert is healthy, or the gateway is "
                    + "shutting down (also when it cancels the stream while draining)"})
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Target target;

    static final class Target {
        @Option(names = "--model", paramLabel = "DIR",
                description = "Run the reference engine on this Hugging Face model directory (config.json, "
                        + "tokenizer.json, safetensors).")
        Path model;

        @Option(names = "--endpoint", paramLabel = "HOST:PORT",
                description = "Call a running mesh: the gateway's gRPC address as printed by `moemesh up`.")
        String endpoint;
    }

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

    @Option(names = "--api-key", paramLabel = "KEY",
            description = "With --endpoint: the gateway's API key (default: environment MOEMESH_API_KEY). Never logged.")
    String apiKey;

    private String apiKey() {
        if (apiKey != null) {
            return apiKey;
        }
        String env = System.getenv("MOEMESH_API_KEY");
        return env == null || env.isBlank() ? null : env;
    }

    @Override
    public Integer call() {
        String text = promptText();
        // Built in both modes: the same parameter checks and messages whichever engine runs the request.
        SamplingParams params = new SamplingParams(temperature, topP, topK,
                seed == null ? OptionalLong.empty() : OptionalLong.of(seed), maxTokens, false);
        return target.endpoint != null ? callMesh(text, params) : runLocally(target.model, text, params);
    }

    private int callMesh(String text, SamplingParams params) {
        var sampling = io.moemesh.proto.gateway.v1.SamplingParams.newBuilder().setMaxTokens(params.maxTokens())
                .setTemperature((float) params.temperature()).setTopP((float) params.topP()).setTopK(params.topK());
        params.seed().ifPresent(sampling::setSeed);
        GenerateRequest request = GenerateRequest.newBuilder().setPrompt(text).setSampling(sampling).setTrace(trace).build();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        boolean[] printed = {false};
        // Once the gateway answered, a transport failure is a connection lost mid-call, not a gateway never reached.
        boolean[] answered = {false};
        try (GatewayClient client = new GatewayClient(target.endpoint, null, apiKey())) {
            Generation g = client.generate(request, r -> {
                answered[0] = true;
                if (!r.getRequestId().isEmpty()) {
                    err.printf("moemesh: request %s on %s, %d prompt tokens%n", r.getRequestId(), target.endpoint,
                            r.getPromptTokens());
                    err.flush();
                }
                if (!json && !r.getText().isEmpty()) {
                    out.print(r.getText());
                    out.flush();
                    printed[0] = true;
                }
            });
            out.println(json ? GenerationJson.of(g, trace) : "");
            out.flush();
            return 0;
        } catch (RuntimeException e) {
            if (printed[0]) {
                // end the partial line on stdout, so the error line on stderr starts a line of its own
                out.println();
                out.flush();
            }
            throw answered[0] ? e : unreachable(e);
        }
    }

    /**
     * A gateway that could not be reached (the status carries the transport's failure as its cause; a gateway that
     * answers UNAVAILABLE itself has none): the line names the endpoint and the reason, as the router commands' does.
     * Any other failure is returned as it is.
     */
    private RuntimeException unreachable(RuntimeException e) {
        if (!(e instanceof StatusRuntimeException s) || s.getStatus().getCode() != Status.Code.UNAVAILABLE
                || s.getStatus().getCause() == null) {
            return e;
        }
        String why = s.getStatus().getDescription() == null ? "" : s.getStatus().getDescription() + ": ";
        return Status.UNAVAILABLE.withCause(s.getStatus().getCause())
                .withDescription("gateway not reachable at " + target.endpoint + " (" + why
                        + InputErrorHandler.rootCause(s.getStatus().getCause()) + "); is the mesh up? (moemesh up "
                        + "starts one and prints its gateway's gRPC address)")
                .asRuntimeException();
    }

    private int runLocally(Path model, String text, SamplingParams params) {
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
            // In long: ids.length + maxTokens overflows int for a --max-tokens near 2^31 - 1, and the negative sum
            // sized the KV cache to one block, ending the generation there.
            int total = (int) Math.min(c.maxPositionEmbeddings(), (long) ids.length + maxTokens);
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

    /**
     * The prompt; a prompt file that is missing, unreadable or not UTF-8 is bad input (one line naming the file, exit
     * code 2), not a bug: the I/O error becomes an {@link IllegalArgumentException}.
     */
    private String promptText() {
        if (prompt.file == null) {
            return prompt.text;
        }
        if (!Files.isRegularFile(prompt.file)) {
            throw new ModelFormatException("--prompt-file " + prompt.file + ": file not found");
        }
        try {
            return Files.readString(prompt.file, StandardCharsets.UTF_8);
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("--prompt-file " + prompt.file + ": not UTF-8 text", e);
        } catch (AccessDeniedException e) {
            throw new IllegalArgumentException("--prompt-file " + prompt.file + ": not readable (permission denied)", e);
        } catch (IOException e) {
            throw new IllegalArgumentException("--prompt-file " + prompt.file + ": not readable (" + e + ")", e);
        }
    }
}
