package io.moemesh.model.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The {@code pre_tokenizer} step: cuts each normalized piece into the words the model tokenizes independently.
 * HF applies a pre-tokenizer to every split of a PreTokenizedString on its own (pre_tokenizer.rs {@code split});
 * the only context a split carries is its position in the original input, which Metaspace's
 * {@code prepend_scheme: "first"} reads through {@code offsets_original().0 == 0}.
 */
sealed interface PreTokenizer {

    /**
     * A piece of text on its way to the model.
     *
     * @param atInputStart whether the piece begins at offset 0 of the original input (HF's
     *                     {@code offsets_original().0 == 0}); false after an added token
     */
    record Piece(String text, boolean atInputStart) {
    }

    /** Appends the non-empty pieces {@code piece} is cut into (HF drops empty splits). */
    void split(Piece piece, List<Piece> out);

    /** Whether some input can vanish (a split that removes its delimiters); see {@link Tokenizer#maxInputBytesPerToken()}. */
    boolean dropsText();

    /** Whether every piece it outputs consists of byte-level alphabet characters only. */
    default boolean spellsBytes() {
        return false;
    }

    /** pre_tokenizers/sequence.rs: each pre-tokenizer over every piece the previous one produced. */
    record Sequence(List<PreTokenizer> preTokenizers) implements PreTokenizer {
        public Sequence {
            preTokenizers = List.copyOf(preTokenizers);
        }

        @Override
        public void split(Piece piece, List<Piece> out) {
            List<Piece> current = List.of(piece);
            for (PreTokenizer p : preTokenizers) {
                List<Piece> next = new ArrayList<>();
                for (Piece c : current) {
                    p.split(c, next);
                }
                current = next;
            }
            out.addAll(current);
        }

        @Override
        public boolean dropsText() {
            return preTokenizers.stream().anyMatch(PreTokenizer::dropsText);
        }

        /** Only the last step decides: a later one (Metaspace's prepended replacement) may add other characters. */
        @Override
        public boolean spellsBytes() {
            return !preTokenizers.isEmpty() && preTokenizers.getLast().spellsBytes();
        }
    }

    /**
     * pre_tokenizers/split.rs: cuts at the matches of a literal or regex; {@code invert} swaps which parts are the
     * matches; {@code behavior} says what happens to them.
     */
    record Split(Pattern pattern, SplitBehavior behavior, boolean invert) implements PreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            PatternSplitter.split(piece, pattern, invert, behavior, out);
        }

        @Override
        public boolean dropsText() {
            return behavior == SplitBehavior.REMOVED;
        }
    }

    /**
     * pre_tokenizers/byte_level.rs: optionally prepends a space, optionally cuts with the GPT-2 regex, then spells
     * every UTF-8 byte with the byte-level alphabet.
     */
    record ByteLevel(boolean addPrefixSpace, boolean useRegex) implements PreTokenizer {
        /** The GPT-2 pattern, as in byte_level.rs. */
        static final Pattern GPT2 = HfRegex.compile(
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "GPT-2 regex");

        @Override
        public void split(Piece piece, List<Piece> out) {
            Piece p = piece;
            if (addPrefixSpace && !p.text().startsWith(" ")) {
                p = new Piece(" " + p.text(), p.atInputStart());
            }
            List<Piece> parts = new ArrayList<>();
            if (useRegex) {
                PatternSplitter.split(p, GPT2, false, SplitBehavior.ISOLATED, parts);
            } else {
                parts.add(p);
            }
            for (Piece part : parts) {
                out.add(new Piece(ByteLevelAlphabet.encode(part.text()), part.atInputStart()));
            }
        }

        @Override
        public boolean dropsText() {
            return false;
        }

        @Override
        public boolean spellsBytes() {
            return true;
        }
    }

    /**
     * pre_tokenizers/metaspace.rs: spaces become {@code replacement}; the replacement is prepended to pieces that
     * do not start with it (always, or only to the piece at the start of the input for {@code "first"}); with
     * {@code split} the piece is cut before every replacement (MergedWithNext).
     */
    record Metaspace(String replacement, PrependScheme prependScheme, boolean splitOnReplacement)
            implements PreTokenizer {
        @Override
        public void split(Piece piece, List<Piece> out) {
            String text = piece.text().replace(" ", replacement);
            boolean prepend = switch (prependScheme) {
                case ALWAYS -> true;
                case FIRST -> piece.atInputStart();
                case NEVER -> false;
            };
            if (prepend && !text.startsWith(replacement)) {
                text = replacement + text;
            }
            Piece replaced = new Piece(text, piece.atInputStart());
            if (splitOnReplacement) {
                PatternSplitter.split(replaced, HfRegex.literal(replacement), false, SplitBehavior.MERGED_WITH_NEXT,
                        out);
            } else if (!text.isEmpty()) {
                out.add(replaced);
            }
        }

        @Override
        public boolean dropsText() {
            return false;
        }
    }

    /** Metaspace's {@code prepend_scheme}. */
    enum PrependScheme {
        ALWAYS, FIRST, NEVER
    }
}
