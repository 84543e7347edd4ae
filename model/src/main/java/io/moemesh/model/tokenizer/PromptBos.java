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
 *       starts with a special token adds that token (Mixtral's {@code "<s> $A"}); any other post-processor adds
 *       none at the start.</li>
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
            JsonNode single = "TemplateProcessing".equals(post.path("type").asString(""))
                    ? post.path("single") : null;
            JsonNode first = single != null && single.isArray() && !single.isEmpty() ? single.get(0) : null;
            if (first != null && first.has("SpecialToken")) {
                String token = first.get("SpecialToken").path("id").asString("");
                return Optional.of(id(tokenizer, token, modelDir.resolve("tokenizer.json") + ": post_processor"));
            }
            return Optional.empty();
        }
        return config != null ? Optional.empty() : configBos;
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
