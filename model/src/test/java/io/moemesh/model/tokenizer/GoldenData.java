package io.moemesh.model.tokenizer;

import static io.moemesh.model.golden.JsonArrays.ints;

import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The reference tokenizers under src/test/resources/tokenizers and their golden.json (outputs of HF
 * {@code tokenizers}/{@code transformers}). Public so that other modules' tests can reuse it through the test-jar.
 */
public final class GoldenData {
    public static final List<String> STYLES = List.of("llama-style", "metaspace-style", "qwen-style",
            "bytelevel-style");
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    private GoldenData() {
    }

    /** A file of a reference tokenizer folder, e.g. {@code file("qwen-style", "tokenizer.json")}. */
    public static Path file(String style, String name) {
        URL url = GoldenData.class.getResource("/tokenizers/" + style + "/" + name);
        if (url == null) {
            throw new IllegalStateException("missing test resource tokenizers/" + style + "/" + name);
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static JsonNode golden(String style) {
        return MAPPER.readTree(file(style, "golden.json").toFile());
    }

    /** One {@code cases[]} entry. */
    public record Case(String style, int index, String text, int[] ids, List<String> tokens, String decode,
                       String decodeKeepSpecial) {
        @Override
        public String toString() {
            String shown = text.length() > 40 ? text.substring(0, 40) + "…" : text;
            return style + "#" + index + " " + shown.replace("\n", "\\n");
        }
    }

    /** One {@code chat[]} entry: either {@code text} and {@code ids}, or {@code error}. */
    public record Chat(String style, int index, List<Message> messages, boolean addGenerationPrompt, String text,
                       int[] ids, String error) {
        public record Message(String role, String content) {
        }

        @Override
        public String toString() {
            return style + "#" + index + " " + messages.size() + " messages, add_generation_prompt="
                    + addGenerationPrompt + (error != null ? " (error)" : "");
        }
    }

    public static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (String style : STYLES) {
            JsonNode cases = golden(style).get("cases");
            for (int i = 0; i < cases.size(); i++) {
                JsonNode c = cases.get(i);
                out.add(new Case(style, i, c.get("text").stringValue(), ints(c.get("ids")),
                        c.get("tokens").valueStream().map(JsonNode::stringValue).toList(),
                        c.get("decode").stringValue(), c.get("decode_keep_special").stringValue()));
            }
        }
        return out;
    }

    public static List<Chat> chats() {
        List<Chat> out = new ArrayList<>();
        for (String style : STYLES) {
            JsonNode chats = golden(style).get("chat");
            if (chats == null) {
                continue;
            }
            for (int i = 0; i < chats.size(); i++) {
                JsonNode c = chats.get(i);
                List<Chat.Message> messages = c.get("messages").valueStream()
                        .map(m -> new Chat.Message(m.get("role").stringValue(), m.get("content").stringValue()))
                        .toList();
                out.add(new Chat(style, i, messages, c.get("add_generation_prompt").booleanValue(),
                        c.hasNonNull("text") ? c.get("text").stringValue() : null,
                        c.hasNonNull("ids") ? ints(c.get("ids")) : null,
                        c.hasNonNull("error") ? c.get("error").stringValue() : null));
            }
        }
        return out;
    }
}
