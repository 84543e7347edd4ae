package io.moemesh.model.tokenizer;

import io.moemesh.model.ModelFormatException;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer (BPE model) that reproduces the Rust {@code tokenizers} library
 * exactly: {@link #encode} is {@code tokenizer.encode(text, add_special_tokens=False).ids} and {@link #decode} is
 * {@code tokenizer.decode(ids, skip_special_tokens)}.
 *
 * <p>Encoding follows HF's pipeline: added tokens are cut out of the raw text first (they are never split or
 * normalized), each remaining piece is normalized on its own, cut into words by the pre-tokenizer, and each word
 * is turned into ids by BPE. Instances are immutable and thread-safe.
 */
public final class Tokenizer {
    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final BpeModel model;
    private final Decoder decoder;
    private final AddedVocabulary addedVocabulary;
    /** id → token string; added tokens take precedence over the model vocabulary, as in HF's id_to_token. */
    private final String[] idToToken;
    private final Map<String, Integer> addedTokenIds;
    /** Contents of the special added tokens: HF skips by content when decoding. */
    private final Set<String> specialContents;
    private final Set<Integer> specialIds;
    private final OptionalInt maxInputBytesPerToken;
    /**
     * A plain letter: no supported decoder changes it or merges it with its neighbours (a byte-level decoder maps it
     * to its own byte), unless a Replace or Strip decoder targets it, which {@link #anchorPassesThrough} checks.
     */
    private static final String ANCHOR = "a";
    /** The decoder gives "a" for [a] and "aa" for [a, a]: {@link #tokenText} can cut the anchors off. */
    private final boolean anchorPassesThrough;

    Tokenizer(Normalizer normalizer, PreTokenizer preTokenizer, BpeModel model, Decoder decoder,
              List<AddedToken> addedTokens) {
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        this.model = model;
        this.decoder = decoder;
        this.addedVocabulary = new AddedVocabulary(addedTokens, normalizer);
        int maxId = -1;
        for (int id : model.vocab().values()) {
            maxId = Math.max(maxId, id);
        }
        for (AddedToken t : addedTokens) {
            maxId = Math.max(maxId, t.id());
        }
        this.idToToken = new String[maxId + 1];
        model.vocab().forEach((token, id) -> idToToken[id] = token);
        Map<String, Integer> added = new HashMap<>();
        Set<String> special = new HashSet<>();
        for (AddedToken t : addedTokens) {
            idToToken[t.id()] = t.content();
            added.put(t.content(), t.id());
            if (t.special() && !t.content().isEmpty()) {
                special.add(t.content());
            }
        }
        this.addedTokenIds = Map.copyOf(added);
        this.specialContents = Set.copyOf(special);
        Set<Integer> ids = new TreeSet<>();
        for (int id = 0; id < idToToken.length; id++) {
            if (idToToken[id] != null && specialContents.contains(idToToken[id])) {
                ids.add(id);
            }
        }
        this.specialIds = Collections.unmodifiableSet(ids);
        this.maxInputBytesPerToken = inputBytesBound(addedTokens);
        this.anchorPassesThrough = decoder != null && decoder.decode(List.of(ANCHOR)).equals(ANCHOR)
                && decoder.decode(List.of(ANCHOR, ANCHOR)).equals(ANCHOR + ANCHOR);
    }

    /** See {@link #maxInputBytesPerToken()}; the argument for each step is in the javadoc of its method. */
    private OptionalInt inputBytesBound(List<AddedToken> addedTokens) {
        int shrink = normalizer == null ? 1 : normalizer.maxShrink();
        if (shrink == 0 || (preTokenizer != null && preTokenizer.dropsText())) {
            return OptionalInt.empty();
        }
        boolean byteLevelInput = preTokenizer != null ? preTokenizer.spellsBytes()
                : normalizer != null && normalizer.spellsBytes();
        int longest = model.maxBytesPerToken(byteLevelInput);
        if (longest == 0) {
            return OptionalInt.empty();
        }
        for (AddedToken t : addedTokens) {
            if (t.content().isEmpty()) {
                continue;
            }
            if (t.lstrip() || t.rstrip()) {
                // The match swallows any amount of white space next to it.
                return OptionalInt.empty();
            }
            longest = Math.max(longest, Utf8.encode(t.content()).length);
            if (t.normalized() && normalizer != null) {
                longest = Math.max(longest, Utf8.encode(normalizer.normalize(t.content())).length);
            }
        }
        long bound = (long) shrink * longest;
        return bound > Integer.MAX_VALUE ? OptionalInt.empty() : OptionalInt.of((int) bound);
    }

    /**
     * Loads a tokenizer.json.
     *
     * @throws ModelFormatException if the file is missing, unreadable, not UTF-8, malformed or uses a component
     *                              this implementation does not support; the message names the file
     */
    public static Tokenizer load(Path tokenizerJson) {
        String text;
        try {
            byte[] bytes = Files.readAllBytes(tokenizerJson);
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(bytes))
                    .toString();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ModelFormatException(tokenizerJson + ": file not found", e);
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(tokenizerJson + ": not valid UTF-8", e);
        } catch (IOException e) {
            throw new ModelFormatException(tokenizerJson + ": cannot be read: " + e, e);
        }
        return parse(text, tokenizerJson.toString());
    }

    /**
     * Parses tokenizer.json content.
     *
     * @param sourceName how error messages name the input, e.g. the file name
     * @throws ModelFormatException if the JSON is malformed or uses an unsupported component
     */
    public static Tokenizer parse(String json, String sourceName) {
        return TokenizerJsonParser.parse(json, sourceName);
    }

    /**
     * The ids of {@code text}, as HF's {@code encode(text, add_special_tokens=False)}: added tokens written in the
     * text (e.g. {@code <s>}, {@code <|im_start|>}) are matched as such; no BOS/EOS is added.
     *
     * @throws IllegalArgumentException if the text has a lone surrogate: it is no Unicode text, which HF tokenizers
     *                                  refuse, and UTF-8 cannot encode it (Java's encoder would write '?')
     */
    public int[] encode(String text) {
        checkUnicode(text);
        IntList out = new IntList(text.length() / 3 + 8);
        List<PreTokenizer.Piece> words = new ArrayList<>();
        for (AddedVocabulary.Segment s : addedVocabulary.extract(text)) {
            if (s.isAddedToken()) {
                out.add(s.tokenId());
            } else if (preTokenizer == null) {
                model.tokenize(s.text(), out);
            } else {
                words.clear();
                preTokenizer.split(new PreTokenizer.Piece(s.text(), s.atInputStart()), words);
                for (PreTokenizer.Piece w : words) {
                    model.tokenize(w.text(), out);
                }
            }
        }
        return out.toArray();
    }

    private static void checkUnicode(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException(String.format("the text to encode has a lone surrogate \\u%04x "
                        + "at character %d: it is not Unicode text", (int) c, i));
            }
        }
    }

    /**
     * The text of {@code ids}, as HF's {@code decode(ids, skip_special_tokens)}: ids become token strings (ids
     * without one are ignored), special tokens are dropped when asked, and the decoder chain runs over the list.
     * Byte sequences that are not valid UTF-8 come out as U+FFFD.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            if (id < 0 || id >= idToToken.length || idToToken[id] == null) {
                continue;
            }
            String t = idToToken[id];
            if (skipSpecialTokens && specialContents.contains(t)) {
                continue;
            }
            tokens.add(t);
        }
        // Without a decoder HF joins the tokens with spaces.
        return decoder == null ? String.join(" ", tokens) : decoder.decode(tokens);
    }

    /**
     * The bytes token {@code id} adds to a text, before they are read as UTF-8 (what logprobs report as a token's
     * bytes, so that a client can join them into the text): a byte-level or byte-fallback token that is part of a
     * character gives that part, where {@link #decode} shows U+FFFD; any other token the UTF-8 of
     * {@link #tokenText}, its space included. Empty for special tokens (they are not text) and for ids without a
     * token.
     */
    public byte[] tokenBytes(int id) {
        if (id < 0 || id >= idToToken.length || idToToken[id] == null || specialIds.contains(id)) {
            return new byte[0];
        }
        byte[] raw = decoder == null ? null : decoder.tokenBytes(idToToken[id]);
        return raw != null ? raw : Utf8.encode(tokenText(id));
    }

    /**
     * The bytes the decoder spells token {@code id} as (byte-level characters, a {@code <0xNN>} byte-fallback
     * token), or null for a token it leaves as text, a special token or an id without a token.
     */
    byte[] spelledBytes(int id) {
        if (id < 0 || id >= idToToken.length || idToToken[id] == null || specialIds.contains(id) || decoder == null) {
            return null;
        }
        return decoder.tokenBytes(idToToken[id]);
    }

    /** Where each token's text starts in a text, added token by token ({@link TextOffsets}): one per text. */
    public TextOffsets textOffsets() {
        return new TextOffsets(this, decoder);
    }

    /**
     * The text token {@code id} adds inside a text, as {@code decode([id], false)} spells it but without what the
     * decoder does only at the start or end of a text: a SentencePiece decoder (Metaspace, or Replace ▁ then Strip
     * one leading space) turns "▁is" into "is" alone but into " is" after other text, and per-token strings
     * (logprobs) must join into the text. So the token is decoded between two {@link #ANCHOR} tokens, which every
     * supported decoder passes through as themselves, and the anchors' text is cut off; with a decoder that does
     * not (checked once), or none (HF then joins tokens with spaces), it is {@code decode([id], false)}. A part of
     * a character is U+FFFD, a special token its content, an id without a token "". At the very start of a text
     * the decoder still applies: a completion whose prompt has no text (only BOS) starts with the word without its
     * space.
     */
    public String tokenText(int id) {
        if (id < 0 || id >= idToToken.length || idToToken[id] == null) {
            return "";
        }
        if (!anchorPassesThrough) {
            return decode(new int[] {id}, false);
        }
        String s = decoder.decode(List.of(ANCHOR, idToToken[id], ANCHOR));
        if (s.length() >= 2 * ANCHOR.length() && s.startsWith(ANCHOR) && s.endsWith(ANCHOR)) {
            return s.substring(ANCHOR.length(), s.length() - ANCHOR.length());
        }
        return decode(new int[] {id}, false);
    }

    /**
     * An upper bound B on the UTF-8 bytes of input one token can stand for, so that for every text
     * {@code encode(text).length >= utf8Bytes(text) / B}: a text longer than {@code n * B} bytes certainly has more
     * than n tokens, and a server can refuse a prompt that cannot fit its context without tokenizing it.
     *
     * <p>B = (the most input bytes the normalizer turns into one byte) × (the longest token in UTF-8 bytes, added
     * tokens included; 4 when an unknown token stands for one code point). Why that holds: added tokens are cut
     * out verbatim; normalizers never shorten text by more than their factor; pre-tokenizers only cut or spell
     * bytes with longer characters; each BPE id stands for at most its own bytes. Empty when no bound exists
     * because input can vanish: a Strip normalizer, a Replace by a regex or by "", a pre-tokenizer that removes
     * its delimiters, added tokens with lstrip/rstrip, characters missing from the vocabulary without a complete
     * byte fallback or a per-character unknown token (fuse_unk makes one id stand for a whole run).
     */
    public OptionalInt maxInputBytesPerToken() {
        return maxInputBytesPerToken;
    }

    /** Max id + 1 over the model vocabulary and the added tokens. */
    public int vocabSize() {
        return idToToken.length;
    }

    /** The id of a token string (added tokens first, then the model vocabulary). */
    public OptionalInt tokenId(String token) {
        Integer id = addedTokenIds.get(token);
        if (id == null) {
            id = model.vocab().get(token);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * The token string of an id, as the vocabulary spells it (byte-level tokens read "Ġworld").
     *
     * @throws IllegalArgumentException if no token has this id
     */
    public String token(int id) {
        return findToken(id).orElseThrow(() -> new IllegalArgumentException(
                "token id " + id + " is not in the vocabulary (size " + idToToken.length + ")"));
    }

    /** The token string of an id, or empty when no token has it. */
    public Optional<String> findToken(int id) {
        return id < 0 || id >= idToToken.length ? Optional.empty() : Optional.ofNullable(idToToken[id]);
    }

    /** Whether {@code id} is a special added token (one that {@code decode(ids, true)} drops). */
    public boolean isSpecial(int id) {
        return specialIds.contains(id);
    }

    /** The ids of all special added tokens, ascending. */
    public Set<Integer> specialIds() {
        return specialIds;
    }

    /** Token strings of {@code ids}, for logs and tests. */
    public List<String> tokens(int[] ids) {
        return Arrays.stream(ids).mapToObj(this::token).toList();
    }
}
