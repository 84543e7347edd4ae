package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Which token, if any, a prompt starts with, as transformers' {@code tokenizer(text)} (add_special_tokens=True)
 * decides it: not config.json's {@code bos_token_id}, which Qwen2-MoE checkpoints set (151643) though their tokenizer
 * adds nothing, so prepending it would feed the model a token the reference never sees.
 * <ol>
 *   <li>tokenizer_config.json's {@code add_bos_token}, where set: Llama- and GPT-NeoX-style tokenizers rebuild their
 *       post-processor from it ({@code LlamaTokenizerFast.update_post_processor}); the token is its
 *       {@code bos_token}.</li>
 *   <li>Else tokenizer.json's {@code post_processor}: a {@code TemplateProcessing} whose {@code single} template
 *       starts with a special token adds that token (Mixtral's {@code "<s> $A"}), as {@code BertProcessing} and
 *       {@code RobertaProcessing} add their {@code cls}; a {@code Sequence} of processors adds what the last of
 *       them that adds a first token adds (Llama 3: {@code ByteLevel}, then a template starting with
 *       {@code <|begin_of_text|>}); any other post-processor ({@code ByteLevel} alone) adds none at the start.</li>
 *   <li>Else, with a tokenizer_config.json, none (Qwen2's tokenizer: no post-processor, {@code bos_token} null).</li>
 *   <li>Else (a directory with only tokenizer.json and config.json, as the bundled tiny models): config.json's
 *       {@code bos_token_id}, the convention their reference outputs were made with.</li>
 * </ol>
 */
public final class PromptBos {
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    private PromptBos() {
    }

    /**
     * @param modelDir   holds tokenizer.json and maybe tokenizer_config.json
     * @param tokenizer  the directory's tokenizer (to resolve token strings)
     * @param configBos  config.json's bos_token_id
     * @throws ModelFormatException naming the file when a token it names is not in the vocabulary
     */
    public static Optional<Integer> of(Path modelDir, Tokenizer tokenizer, Optional<Integer> configBos) {
        Path configFile = modelDir.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? read(configFile) : null;
        if (config != null && config.get("add_bos_token") != null && config.get("add_bos_token").isBoolean()) {
            if (!config.get("add_bos_token").booleanValue()) {
                return Optional.empty();
            }
            Optional<String> bos = TokenizerConfig.load(configFile).bosToken();
            if (bos.isEmpty()) {
                return configBos;
            }
            return Optional.of(id(tokenizer, bos.get(), configFile + ": bos_token"));
        }
        JsonNode post = read(modelDir.resolve("tokenizer.json")).get("post_processor");
        if (post != null && !post.isNull()) {
            return startToken(post).map(token -> id(tokenizer, token,
                    modelDir.resolve("tokenizer.json") + ": post_processor"));
        }
        return config != null ? Optional.empty() : configBos;
    }

    /**
     * The special token a post-processor puts first, if any. A {@code Sequence} runs its processors in order, each on
     * the previous one's output, so the last one that puts a token first decides (Llama 3's ByteLevel, which only
     * trims offsets, then a TemplateProcessing).
     */
    private static Optional<String> startToken(JsonNode post) {
        String type = post.path("type").asString("");
        if ("Sequence".equals(type)) {
            Optional<String> start = Optional.empty();
            for (JsonNode processor : post.path("processors")) {
                Optional<String> token = startToken(processor);
                if (token.isPresent()) {
                    start = token;
                }
            }
            return start;
        }
        if ("TemplateProcessing".equals(type)) {
            JsonNode single = post.path("single");
            JsonNode first = single.isArray() && !single.isEmpty() ? single.get(0) : null;
            return first != null && first.has("SpecialToken")
                    ? Optional.of(first.get("SpecialToken").path("id").asString("")) : Optional.empty();
        }
        if ("BertProcessing".equals(type) || "RobertaProcessing".equals(type)) {
            // both wrap a sequence as cls $A sep; cls is [token, id]
            return Optional.of(post.path("cls").path(0).asString(""));
        }
        return Optional.empty();
    }

    private static int id(Tokenizer tokenizer, String token, String where) {
        return tokenizer.tokenId(token).orElseThrow(() -> new ModelFormatException(where + " names " + token
                + ", which is not in the vocabulary"));
    }

    private static JsonNode read(Path file) {
        try {
            return MAPPER.readTree(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException | JacksonException e) {
            throw new ModelFormatException(file + ": cannot be read: " + e.getMessage(), e);
        }
    }
}
