package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads a Hugging Face tokenizer.json: {@code added_tokens}, the BPE {@code model} and, through
 * {@link ComponentParser}, the normalizer, pre-tokenizer and decoder. The {@code post_processor},
 * {@code truncation} and {@code padding} sections are not read: {@link Tokenizer#encode} is HF's
 * {@code encode(text, add_special_tokens=False)}, which does not apply them, and limits are the server's business.
 */
final class TokenizerJsonParser {
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    private final Json json;
    private final ComponentParser components;

    private TokenizerJsonParser(String source) {
        this.json = new Json(source);
        this.components = new ComponentParser(json);
    }

    static Tokenizer parse(String text, String source) {
        return new TokenizerJsonParser(source).parse(text);
    }

    private Tokenizer parse(String text) {
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JacksonException e) {
            throw new ModelFormatException(json.source() + ": malformed JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(json.source() + ": malformed JSON: the top level must be an object");
        }
        Normalizer normalizer = components.normalizer(root.get("normalizer"), "normalizer");
        PreTokenizer preTokenizer = components.preTokenizer(root.get("pre_tokenizer"), "pre_tokenizer");
        Decoder decoder = components.decoder(root.get("decoder"), "decoder");
        List<AddedToken> added = addedTokens(root);
        BpeModel model = model(json.object(root, "model", ""), added);
        checkAddedTokenIds(added, model.vocab());
        return new Tokenizer(normalizer, preTokenizer, model, decoder, added);
    }

    /**
     * The tokenizers library does not use a declared {@code added_tokens[].id}: loading adds all the tokens in one
     * {@code add_tokens} call (serialization.rs, added_vocabulary.rs) and each gets the id its content already has
     * (an earlier added token's, else model.vocab's, even one at or past model.vocab's size) or else the next new
     * id, which starts at model.vocab's size and grows by one per token given a new id; an empty content gets none.
     * This is the rule of tokenizers 0.22.2 and later (PR #1891; 0.23.x keeps it), not the "largest added id + 1"
     * of 0.22.1 and earlier. It only warns when that differs from the declared id. {@link Tokenizer} uses the
     * declared ids (an added token's id names it for decoding), so a file where they differ, hand-edited or
     * converted, would encode and decode other ids than HF: "!" could vanish, or {@code "<sep>"} reach the model
     * as "!". Such a file is refused, naming the token.
     *
     * <p>The library keeps one token per id ({@code added_tokens_map_r.insert(id, token)}). A token given the id of
     * an earlier added token of other content replaces it, so HF no longer matches the earlier one in text while
     * {@link Tokenizer} would match both; the new-id rule can lead there (model.vocab {@code {..., "<s>": 7}} of
     * size 4 gives the fourth new token 7, "<s>"'s id). A new id that a model.vocab entry of other content holds
     * makes that entry decode as the added token ("!" in, "<y>" out). Both are refused, naming both tokens and the id.
     */
    private void checkAddedTokenIds(List<AddedToken> added, Map<String, Integer> vocab) {
        Map<String, Integer> assigned = new HashMap<>();
        Map<String, Integer> firstIndex = new HashMap<>();
        Map<Integer, String> vocabById = null;
        // Which content holds each id an added token got: HF keeps the last, so a second content means a lost token.
        Map<Integer, String> addedOwner = new HashMap<>();
        Map<Integer, Integer> addedOwnerIndex = new HashMap<>();
        int nextNew = vocab.size();
        for (int i = 0; i < added.size(); i++) {
            AddedToken t = added.get(i);
            String path = "added_tokens[" + i + "]";
            if (t.content().isEmpty()) {
                vocabById = vocabById == null ? byId(vocab) : vocabById;
                String there = vocabById.get(t.id());
                if (there != null) {
                    throw json.error(path + ".id", "\"\" has id " + t.id() + ", which is \"" + there
                            + "\" in model.vocab: the tokenizers library ignores an empty added token, and decoding"
                            + " would lose \"" + there + "\"");
                }
                String owner = addedOwner.get(t.id());
                if (owner != null) {
                    throw json.error(path + ".id", "\"\" has id " + t.id() + ", which is already \"" + owner
                            + "\"'s (added_tokens[" + addedOwnerIndex.get(t.id()) + "]): the tokenizers library ignores"
                            + " an empty added token, and decoding would lose \"" + owner + "\"");
                }
                continue;
            }
            Integer hf = assigned.get(t.content());
            String why;
            boolean newId = false;
            if (hf != null) {
                why = "the id of added_tokens[" + firstIndex.get(t.content()) + "], which has the same content";
            } else if (vocab.containsKey(t.content())) {
                hf = vocab.get(t.content());
                why = "its id in model.vocab";
            } else {
                hf = nextNew++;
                newId = true;
                why = "the next new id: model.vocab's size " + vocab.size() + " plus the added tokens before it"
                        + " that got a new id";
            }
            if (hf != t.id()) {
                String there = byId(vocab).get(t.id());
                throw json.error(path + ".id", "\"" + t.content() + "\" has id " + t.id()
                        + (there == null ? "" : ", which is \"" + there + "\" in model.vocab,")
                        + " but the tokenizers library ignores a declared id and gives it " + hf + " (" + why
                        + "): the ids would not be the ones the file declares");
            }
            String owner = addedOwner.get(hf);
            String ownerWhere = owner == null ? null : "added_tokens[" + addedOwnerIndex.get(hf) + "]";
            if (owner == null && newId) {
                vocabById = vocabById == null ? byId(vocab) : vocabById;
                owner = vocabById.get(hf);
                ownerWhere = "model.vocab";
            }
            if (owner != null && !owner.equals(t.content())) {
                throw json.error(path + ".id", "\"" + t.content() + "\" gets id " + hf + " (" + why + "), which is"
                        + " already \"" + owner + "\"'s (" + ownerWhere + "): the tokenizers library keeps one token"
                        + " per id, so \"" + t.content() + "\" would replace \"" + owner + "\" there and the ids would"
                        + " not encode and decode as the file declares");
            }
            addedOwner.putIfAbsent(hf, t.content());
            addedOwnerIndex.putIfAbsent(hf, i);
            firstIndex.putIfAbsent(t.content(), i);
            assigned.put(t.content(), hf);
        }
    }

    private static Map<Integer, String> byId(Map<String, Integer> vocab) {
        Map<Integer, String> out = new HashMap<>(vocab.size() * 2);
        vocab.forEach((token, id) -> out.putIfAbsent(id, token));
        return out;
    }

    private List<AddedToken> addedTokens(JsonNode root) {
        List<AddedToken> out = new ArrayList<>();
        JsonNode arr = root.get("added_tokens");
        if (arr == null || arr.isNull()) {
            return out;
        }
        if (!arr.isArray()) {
            throw json.error("added_tokens", "must be an array");
        }
        for (int i = 0; i < arr.size(); i++) {
            String path = "added_tokens[" + i + "]";
            JsonNode t = arr.get(i);
            if (!t.isObject()) {
                throw json.error(path, "must be an object");
            }
            JsonNode idNode = t.get("id");
            if (idNode == null || !idNode.isIntegralNumber() || !idNode.canConvertToInt() || idNode.intValue() < 0) {
                throw json.error(path + ".id", "must be a non-negative integer");
            }
            boolean special = json.bool(t, "special", path, false);
            out.add(new AddedToken(idNode.intValue(), json.string(t, "content", path),
                    json.bool(t, "single_word", path, false), json.bool(t, "lstrip", path, false),
                    json.bool(t, "rstrip", path, false), json.bool(t, "normalized", path, !special), special));
        }
        return out;
    }

    private BpeModel model(JsonNode m, List<AddedToken> added) {
        String type = json.optString(m, "type", "model");
        // Files written before the "type" tag was added hold a BPE model when they have merges.
        if (type == null && m.has("merges")) {
            type = "BPE";
        }
        if (!"BPE".equals(type)) {
            throw json.error("model", "type " + (type == null ? "(missing)" : "\"" + type + "\"")
                    + " is not supported (supported: BPE)");
        }
        JsonNode dropout = m.get("dropout");
        if (dropout != null && !dropout.isNull() && (!dropout.isNumber() || dropout.doubleValue() != 0.0)) {
            throw json.error("model.dropout", "is not supported (BPE dropout makes encoding random; expected null)");
        }
        Map<String, Integer> vocab = vocab(m);
        String prefix = json.optString(m, "continuing_subword_prefix", "model");
        String suffix = json.optString(m, "end_of_word_suffix", "model");
        MergeTable merges = merges(m, vocab, prefix == null ? 0 : prefix.length());
        int unkId = -1;
        String unk = json.optString(m, "unk_token", "model");
        if (unk != null) {
            Integer id = vocab.get(unk);
            if (id == null) {
                id = added.stream().filter(t -> t.content().equals(unk)).map(AddedToken::id).findFirst().orElse(null);
            }
            if (id == null) {
                throw json.error("model.unk_token", "\"" + unk + "\" is not in the vocabulary");
            }
            unkId = id;
        }
        return new BpeModel(vocab, merges, unkId, json.bool(m, "fuse_unk", "model", false),
                json.bool(m, "byte_fallback", "model", false), json.bool(m, "ignore_merges", "model", false),
                prefix, suffix);
    }

    private Map<String, Integer> vocab(JsonNode m) {
        JsonNode v = json.object(m, "vocab", "model");
        Map<String, Integer> vocab = new HashMap<>(v.size() * 2);
        for (Map.Entry<String, JsonNode> e : v.properties()) {
            JsonNode id = e.getValue();
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0) {
                throw json.error("model.vocab[\"" + e.getKey() + "\"]", "must be a non-negative integer id");
            }
            vocab.put(e.getKey(), id.intValue());
        }
        return vocab;
    }

    /**
     * {@code merges} as {@code ["a", "b"]} pairs (tokenizers >= 0.20) or legacy {@code "a b"} strings. As in
     * HF's BpeBuilder, the merged token is {@code a + b} without b's continuing-subword prefix, and every part
     * must be in the vocabulary.
     */
    private MergeTable merges(JsonNode m, Map<String, Integer> vocab, int prefixLength) {
        JsonNode arr = m.get("merges");
        if (arr == null || arr.isNull()) {
            return new MergeTable(0);
        }
        if (!arr.isArray()) {
            throw json.error("model.merges", "must be an array");
        }
        MergeTable table = new MergeTable(arr.size());
        for (int i = 0; i < arr.size(); i++) {
            String path = "model.merges[" + i + "]";
            JsonNode e = arr.get(i);
            String a;
            String b;
            if (e.isString()) {
                String[] parts = e.stringValue().split(" ", -1);
                if (parts.length != 2) {
                    throw json.error(path, "\"" + e.stringValue() + "\" is not two tokens separated by one space");
                }
                a = parts[0];
                b = parts[1];
            } else if (e.isArray() && e.size() == 2 && e.get(0).isString() && e.get(1).isString()) {
                a = e.get(0).stringValue();
                b = e.get(1).stringValue();
            } else {
                throw json.error(path, "must be a [\"left\", \"right\"] pair or a \"left right\" string");
            }
            if (b.length() < prefixLength) {
                throw json.error(path, "\"" + b + "\" is shorter than continuing_subword_prefix");
            }
            table.put(id(vocab, a, path), id(vocab, b, path), i, id(vocab, a + b.substring(prefixLength), path));
        }
        return table;
    }

    private int id(Map<String, Integer> vocab, String token, String path) {
        Integer id = vocab.get(token);
        if (id == null) {
            throw json.error(path, "uses \"" + token + "\", which is not in model.vocab");
        }
        return id;
    }
}
