package io.moemesh.model.chat;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.tokenizer.TokenizerConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Where a model directory keeps its chat template and special tokens, as transformers'
 * {@code PreTrainedTokenizerBase._from_pretrained} reads them: {@link ChatTemplate#fromDirectory} and
 * {@link ChatTemplate#fromTokenizerConfig}.
 */
final class ChatTemplateFiles {
    static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    /** Read whether or not a tokenizer_config.json exists; its entries replace the config's. */
    static final String SPECIAL_TOKENS_MAP = "special_tokens_map.json";
    private static final String TEMPLATE_FILE = "chat_template.jinja";
    private static final String TEMPLATE_DIR = "additional_chat_templates";

    private ChatTemplateFiles() {
    }

    static Optional<ChatTemplate> fromDirectory(Path modelDir) {
        Path config = modelDir.resolve(TOKENIZER_CONFIG);
        if (Files.isRegularFile(config)) {
            return fromTokenizerConfig(config);
        }
        Path dir = modelDir.toAbsolutePath();
        Map<String, String> files = templateFiles(dir);
        if (files.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(ChatTemplate.load(defaultTemplate(files, dir + ": " + TEMPLATE_DIR + "/", true),
                specialTokens(dir, null), "no " + SPECIAL_TOKENS_MAP + " in " + dir + " (which has no "
                        + TOKENIZER_CONFIG + ")"));
    }

    static Optional<ChatTemplate> fromTokenizerConfig(Path tokenizerConfigJson) {
        TokenizerConfig config = TokenizerConfig.load(tokenizerConfigJson);
        Path dir = tokenizerConfigJson.toAbsolutePath().getParent();
        Map<String, String> files = templateFiles(dir);
        Map<String, String> templates = files.isEmpty() ? config.chatTemplates() : files;
        if (templates.isEmpty()) {
            return Optional.empty();
        }
        String source = files.isEmpty() ? tokenizerConfigJson + ": chat_template" : dir + ": " + TEMPLATE_DIR + "/";
        return Optional.of(ChatTemplate.load(defaultTemplate(templates, source, !files.isEmpty()),
                specialTokens(dir, tokenizerConfigJson), "neither " + TOKENIZER_CONFIG + " nor a "
                        + SPECIAL_TOKENS_MAP + " in " + dir));
    }

    /**
     * The special tokens transformers gives the template: tokenizer_config.json's entries, replaced key by key by
     * special_tokens_map.json's ({@code _from_pretrained} sets {@code init_kwargs[key]} from that file). A key set
     * to null is there with a null value: transformers then has no such token (the template sees it undefined).
     */
    private static Map<String, String> specialTokens(Path dir, Path tokenizerConfigJson) {
        Map<String, String> tokens = new LinkedHashMap<>();
        if (tokenizerConfigJson != null) {
            tokens.putAll(TokenizerConfig.specialTokenEntries(tokenizerConfigJson));
        }
        Path map = dir.resolve(SPECIAL_TOKENS_MAP);
        if (Files.isRegularFile(map)) {
            tokens.putAll(TokenizerConfig.specialTokenEntries(map));
        }
        return tokens;
    }

    /** The template named "default" of {@code templates} (read from {@code source}). */
    private static String defaultTemplate(Map<String, String> templates, String source, boolean fromFiles) {
        String template = templates.get("default");
        if (template == null) {
            throw new ModelFormatException(source + " lists " + templates.keySet() + " but none is named \"default\""
                    + (fromFiles ? " (no " + TEMPLATE_FILE + ")" : ""));
        }
        return template;
    }

    /** chat_template.jinja as "default" and additional_chat_templates/*.jinja by name; empty when there are none. */
    private static Map<String, String> templateFiles(Path dir) {
        Map<String, String> out = new TreeMap<>();
        Path file = dir.resolve(TEMPLATE_FILE);
        if (Files.exists(file)) {
            out.put("default", readTemplate(file));
        }
        Path extra = dir.resolve(TEMPLATE_DIR);
        if (Files.isDirectory(extra)) {
            try (Stream<Path> list = Files.list(extra)) {
                for (Path p : list.filter(f -> f.getFileName().toString().endsWith(".jinja")).toList()) {
                    String name = p.getFileName().toString();
                    out.put(name.substring(0, name.length() - ".jinja".length()), readTemplate(p));
                }
            } catch (IOException e) {
                throw new ModelFormatException(extra + ": cannot list the chat templates (" + e.getMessage() + ")", e);
            }
        }
        return out;
    }

    private static String readTemplate(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read the chat template (" + e.getMessage() + ")", e);
        }
    }
}
