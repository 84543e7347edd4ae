package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import tools.jackson.databind.JsonNode;

/**
 * Builds the normalizer, pre-tokenizer and decoder of a tokenizer.json (their {@code "type"}-tagged JSON, as HF's
 * serde definitions read it). Anything this code does not reproduce exactly is rejected, naming the component,
 * rather than approximated; that includes a regex construct Java would read otherwise than Oniguruma (see
 * {@link HfRegex}).
 */
final class ComponentParser {
    private static final String NORMALIZERS =
            "Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, ByteLevel";
    private static final String PRE_TOKENIZERS =
            "Sequence, ByteLevel, Metaspace, Split, Digits, Whitespace, WhitespaceSplit, Punctuation";
    private static final String DECODERS = "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace";

    /**
     * whitespace.rs: keeps the matches of \w+|[^\w\s]+, drops the rest. Unlike Split's, this regex is compiled by
     * the regex crate, not Oniguruma: its \w is Unicode's word class (with U+200C and U+200D, without ²), which is
     * Java's with {@link Pattern#UNICODE_CHARACTER_CLASS}, so it is not rewritten as {@link HfRegex} would.
     */
    static final Pattern WHITESPACE = Pattern.compile("\\w+|[^\\w\\s]+", Pattern.UNICODE_CHARACTER_CLASS);

    private final Json json;

    ComponentParser(Json json) {
        this.json = json;
    }

    /** Null for a JSON null or absent component. */
    Normalizer normalizer(JsonNode node, String path) {
        if (node == null || node.isNull()) {
            return null;
        }
        String type = type(node, path);
        return switch (type) {
            case "Sequence" -> new Normalizer.Sequence(list(node, "normalizers", path, this::normalizer));
            case "Prepend" -> new Normalizer.Prepend(json.string(node, "prepend", path));
            case "Replace" -> new Normalizer.Replace(pattern(node, path), json.string(node, "content", path));
            case "NFC" -> new Normalizer.UnicodeForm(java.text.Normalizer.Form.NFC);
            case "NFD" -> new Normalizer.UnicodeForm(java.text.Normalizer.Form.NFD);
            case "NFKC" -> new Normalizer.UnicodeForm(java.text.Normalizer.Form.NFKC);
            case "NFKD" -> new Normalizer.UnicodeForm(java.text.Normalizer.Form.NFKD);
            case "Lowercase" -> new Normalizer.Lowercase();
            case "Strip" -> new Normalizer.Strip(json.bool(node, "strip_left", path, true),
                    json.bool(node, "strip_right", path, true));
            case "ByteLevel" -> new Normalizer.ByteLevel();
            default -> throw unsupported(path, type, NORMALIZERS);
        };
    }

    PreTokenizer preTokenizer(JsonNode node, String path) {
        if (node == null || node.isNull()) {
            return null;
        }
        String type = type(node, path);
        return switch (type) {
            case "Sequence" -> new PreTokenizer.Sequence(list(node, "pretokenizers", path, this::preTokenizer));
            case "ByteLevel" -> new PreTokenizer.ByteLevel(json.bool(node, "add_prefix_space", path, true),
                    json.bool(node, "use_regex", path, true));
            case "Metaspace" -> metaspace(node, path);
            case "Split" -> split(node, path);
            // digits.rs: char::is_numeric is \p{N}; each digit alone, or runs of digits.
            case "Digits" -> new PreTokenizer.Split(HfRegex.compile("\\p{N}", path),
                    json.bool(node, "individual_digits", path, false)
                            ? SplitBehavior.ISOLATED : SplitBehavior.CONTIGUOUS, false);
            case "Whitespace" -> new PreTokenizer.Split(WHITESPACE, SplitBehavior.REMOVED, true);
            case "WhitespaceSplit" -> new PreTokenizer.Split(HfRegex.compile("\\s", path),
                    SplitBehavior.REMOVED, false);
            // punctuation.rs: ASCII punctuation or a Unicode P* character, one at a time.
            case "Punctuation" -> new PreTokenizer.Split(HfRegex.compile("[\\p{P}!-/:-@\\[-`{-~]", path),
                    behavior(node, path, SplitBehavior.ISOLATED), false);
            default -> throw unsupported(path, type, PRE_TOKENIZERS);
        };
    }

    Decoder decoder(JsonNode node, String path) {
        if (node == null || node.isNull()) {
            return null;
        }
        String type = type(node, path);
        return switch (type) {
            case "Sequence" -> new Decoder.Sequence(list(node, "decoders", path, this::decoder));
            case "ByteLevel" -> new Decoder.ByteLevel();
            case "Replace" -> new Decoder.Replace(pattern(node, path), json.string(node, "content", path));
            case "ByteFallback" -> new Decoder.ByteFallback();
            case "Fuse" -> new Decoder.Fuse();
            case "Strip" -> new Decoder.Strip(json.character(node, "content", path),
                    json.nonNegativeInt(node, "start", path, 0), json.nonNegativeInt(node, "stop", path, 0));
            case "Metaspace" -> new Decoder.Metaspace(json.character(node, "replacement", path),
                    prependScheme(node, path));
            default -> throw unsupported(path, type, DECODERS);
        };
    }

    private PreTokenizer metaspace(JsonNode node, String path) {
        String replacement = new String(Character.toChars(json.character(node, "replacement", path)));
        return new PreTokenizer.Metaspace(replacement, prependScheme(node, path),
                json.bool(node, "split", path, true));
    }

    /**
     * metaspace.rs {@code Metaspace::deserialize} (the pre-tokenizer's and the decoder's): {@code prepend_scheme}
     * defaults to "always"; the legacy {@code add_prefix_space} is checked only when false, and then the scheme
     * (declared or by default) must be "never", else the file is refused ("add_prefix_space does not match
     * declared prepend_scheme", since tokenizers PR #1476, 2024) — so a lone {@code add_prefix_space: false} is
     * refused too, and {@code add_prefix_space: true} changes nothing.
     */
    private PreTokenizer.PrependScheme prependScheme(JsonNode node, String path) {
        String scheme = json.optString(node, "prepend_scheme", path);
        PreTokenizer.PrependScheme declared = scheme == null ? PreTokenizer.PrependScheme.ALWAYS : switch (scheme) {
            case "always" -> PreTokenizer.PrependScheme.ALWAYS;
            case "first" -> PreTokenizer.PrependScheme.FIRST;
            case "never" -> PreTokenizer.PrependScheme.NEVER;
            default -> throw json.error(Json.join(path, "prepend_scheme"),
                    "\"" + scheme + "\" is not one of always, first, never");
        };
        if (!json.bool(node, "add_prefix_space", path, true) && declared != PreTokenizer.PrependScheme.NEVER) {
            throw json.error(Json.join(path, "add_prefix_space"), "false does not match prepend_scheme "
                    + (scheme == null ? "\"always\" (the default when absent)" : "\"" + scheme + "\"")
                    + ": add_prefix_space does not match declared prepend_scheme (tokenizers refuses it; write "
                    + "prepend_scheme \"never\")");
        }
        return declared;
    }

    private PreTokenizer split(JsonNode node, String path) {
        return new PreTokenizer.Split(pattern(node, path), behavior(node, path, null),
                json.bool(node, "invert", path, false));
    }

    private SplitBehavior behavior(JsonNode node, String path, SplitBehavior defaultValue) {
        String name = json.optString(node, "behavior", path);
        if (name == null) {
            if (defaultValue == null) {
                throw json.error(Json.join(path, "behavior"), "is missing");
            }
            return defaultValue;
        }
        SplitBehavior b = SplitBehavior.fromJson(name);
        if (b == null) {
            throw json.error(Json.join(path, "behavior"), "\"" + name
                    + "\" is not supported (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext,"
                    + " Contiguous)");
        }
        return b;
    }

    /** HF's {@code SplitPattern}: {@code {"String": "..."}} (a literal) or {@code {"Regex": "..."}}. */
    private Pattern pattern(JsonNode node, String path) {
        JsonNode p = json.object(node, "pattern", path);
        String where = json.source() + ": " + Json.join(path, "pattern");
        if (p.has("String")) {
            return HfRegex.literal(json.string(p, "String", Json.join(path, "pattern")));
        }
        if (p.has("Regex")) {
            return HfRegex.compile(json.string(p, "Regex", Json.join(path, "pattern")), where);
        }
        throw json.error(Json.join(path, "pattern"), "must have a \"String\" or \"Regex\" field");
    }

    private String type(JsonNode node, String path) {
        if (!node.isObject()) {
            throw json.error(path, "must be an object");
        }
        return json.string(node, "type", path);
    }

    private ModelFormatException unsupported(String path, String type, String supported) {
        return json.error(path, "type \"" + type + "\" is not supported (supported: " + supported + ")");
    }

    private <T> List<T> list(JsonNode node, String field, String path, ElementParser<T> parser) {
        JsonNode arr = json.array(node, field, path);
        List<T> out = new ArrayList<>(arr.size());
        for (int i = 0; i < arr.size(); i++) {
            T element = parser.parse(arr.get(i), Json.join(path, field) + "[" + i + "]");
            if (element == null) {
                throw json.error(Json.join(path, field) + "[" + i + "]", "must not be null");
            }
            out.add(element);
        }
        return out;
    }

    @FunctionalInterface
    private interface ElementParser<T> {
        T parse(JsonNode node, String path);
    }
}
