package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * What serving needs from a {@code tokenizer_config.json} (the transformers side of a tokenizer): the special
 * token strings, whether BOS/EOS are added by default, and the chat template(s).
 *
 * @param specialTokens  the special tokens by config key ({@code bos_token}, {@code eos_token}, {@code unk_token},
 *                       {@code pad_token}, {@code sep_token}, {@code cls_token}, {@code mask_token}), only those
 *                       set to a string or an {@code {"content": ...}} object; these are the variables a chat
 *                       template sees, as transformers passes {@code special_tokens_map}
 * @param addBosToken    {@code add_bos_token}, false when absent
 * @param addEosToken    {@code add_eos_token}, false when absent
 * @param chatTemplates  chat templates by name: a single {@code chat_template} string is named "default"; the
 *                       list form {@code [{"name": ..., "template": ...}]} keeps its names
 */
public record TokenizerConfig(Map<String, String> specialTokens, boolean addBosToken, boolean addEosToken,
                              Map<String, String> chatTemplates) {
    private static final List<String> SPECIAL_TOKEN_KEYS = List.of("bos_token", "eos_token", "unk_token",
            "pad_token", "sep_token", "cls_token", "mask_token");
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    public TokenizerConfig {
        specialTokens = Map.copyOf(specialTokens);
        chatTemplates = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(chatTemplates));
    }

    /**
     * Reads a tokenizer_config.json.
     *
     * @throws ModelFormatException if the file is missing, unreadable or malformed; the message names the file
     */
    public static TokenizerConfig load(Path tokenizerConfigJson) {
        String text;
        try {
            text = Files.readString(tokenizerConfigJson, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(tokenizerConfigJson + ": file not found", e);
        } catch (IOException e) {
            throw new ModelFormatException(tokenizerConfigJson + ": cannot be read: " + e, e);
        }
        return parse(text, tokenizerConfigJson.toString());
    }

    /** Parses tokenizer_config.json content; {@code sourceName} names it in error messages. */
    public static TokenizerConfig parse(String json, String sourceName) {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JacksonException e) {
            throw new ModelFormatException(sourceName + ": malformed JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(sourceName + ": malformed JSON: the top level must be an object");
        }
        Json reader = new Json(sourceName);
        Map<String, String> special = new LinkedHashMap<>();
        for (String key : SPECIAL_TOKEN_KEYS) {
            String value = tokenString(root.get(key), reader, key);
            if (value != null) {
                special.put(key, value);
            }
        }
        return new TokenizerConfig(special, reader.bool(root, "add_bos_token", "", false),
                reader.bool(root, "add_eos_token", "", false), chatTemplates(root.get("chat_template"), reader));
    }

    /**
     * The special-token entries of a tokenizer_config.json or a special_tokens_map.json (the same keys, in the same
     * forms): each key of {@code bos_token}, {@code eos_token}, {@code unk_token}, {@code pad_token},
     * {@code sep_token}, {@code cls_token}, {@code mask_token} the file has, to its string, or to null where the file
     * sets it to null (transformers then has no such token, and passes the chat template none).
     *
     * @throws ModelFormatException if the file is unreadable or malformed; the message names the file
     */
    public static Map<String, String> specialTokenEntries(Path file) {
        JsonNode root;
        try {
            root = MAPPER.readTree(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot be read: " + e, e);
        } catch (JacksonException e) {
            throw new ModelFormatException(file + ": malformed JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + ": malformed JSON: the top level must be an object");
        }
        Json reader = new Json(file.toString());
        Map<String, String> out = new LinkedHashMap<>();
        for (String key : SPECIAL_TOKEN_KEYS) {
            if (root.has(key)) {
                out.put(key, tokenString(root.get(key), reader, key));
            }
        }
        return out;
    }

    /** The keys of the special tokens transformers passes a chat template ({@code special_tokens_map}). */
    public static List<String> specialTokenKeys() {
        return SPECIAL_TOKEN_KEYS;
    }

    public Optional<String> bosToken() {
        return Optional.ofNullable(specialTokens.get("bos_token"));
    }

    public Optional<String> eosToken() {
        return Optional.ofNullable(specialTokens.get("eos_token"));
    }

    public Optional<String> unkToken() {
        return Optional.ofNullable(specialTokens.get("unk_token"));
    }

    public Optional<String> padToken() {
        return Optional.ofNullable(specialTokens.get("pad_token"));
    }

    /** The template transformers uses by default: the one named "default". */
    public Optional<String> chatTemplate() {
        return Optional.ofNullable(chatTemplates.get("default"));
    }

    /** A special token is a string, null, or an AddedToken object {@code {"content": "<s>", ...}}. */
    private static String tokenString(JsonNode n, Json reader, String key) {
        if (n == null || n.isNull()) {
            return null;
        }
        if (n.isString()) {
            return n.stringValue();
        }
        if (n.isObject()) {
            return reader.string(n, "content", key);
        }
        throw reader.error(key, "must be a string, an object with \"content\", or null");
    }

    private static Map<String, String> chatTemplates(JsonNode n, Json reader) {
        Map<String, String> out = new LinkedHashMap<>();
        if (n == null || n.isNull()) {
            return out;
        }
        if (n.isString()) {
            out.put("default", n.stringValue());
            return out;
        }
        if (!n.isArray()) {
            throw reader.error("chat_template", "must be a string or a list of {\"name\", \"template\"} objects");
        }
        for (int i = 0; i < n.size(); i++) {
            JsonNode e = n.get(i);
            String path = "chat_template[" + i + "]";
            if (!e.isObject()) {
                throw reader.error(path, "must be an object with \"name\" and \"template\"");
            }
            out.put(reader.string(e, "name", path), reader.string(e, "template", path));
        }
        return out;
    }
}
