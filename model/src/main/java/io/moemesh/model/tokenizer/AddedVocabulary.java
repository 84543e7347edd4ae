package io.moemesh.model.tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds added tokens in the input before anything else runs ({@code AddedVocabulary::extract_and_normalize}).
 *
 * <p>First the tokens with {@code normalized: false} are matched in the raw input; every remaining piece is then
 * normalized and searched for the tokens with {@code normalized: true} (whose patterns are their own normalized
 * content). Matching is leftmost-longest, like HF's Aho-Corasick automaton with {@code MatchKind::LeftmostLongest}:
 * at the first position where any token matches, the longest one wins, and scanning resumes after it — even when
 * that match is then discarded by the {@code single_word} rule.
 */
final class AddedVocabulary {

    /**
     * A piece of the input after extraction: either an added token ({@code tokenId >= 0}) or normalized text
     * for the pre-tokenizer.
     */
    record Segment(String text, int tokenId, boolean atInputStart) {
        boolean isAddedToken() {
            return tokenId >= 0;
        }
    }

    private final Trie raw;
    private final Trie normalizedTrie;
    private final Normalizer normalizer;

    AddedVocabulary(List<AddedToken> tokens, Normalizer normalizer) {
        this.normalizer = normalizer;
        this.raw = new Trie();
        this.normalizedTrie = new Trie();
        for (AddedToken t : tokens) {
            if (t.content().isEmpty()) {
                continue;
            }
            if (t.normalized()) {
                String pattern = normalizer == null ? t.content() : normalizer.normalize(t.content());
                normalizedTrie.add(pattern, t);
            } else {
                raw.add(t.content(), t);
            }
        }
    }

    List<Segment> extract(String text) {
        List<Segment> out = new ArrayList<>();
        for (Segment s : split(text, true, raw)) {
            if (s.isAddedToken()) {
                out.add(s);
                continue;
            }
            String normalized = normalizer == null ? s.text() : normalizer.normalize(s.text());
            for (Segment n : split(normalized, s.atInputStart(), normalizedTrie)) {
                out.add(n);
            }
        }
        return out;
    }

    /** {@code find_matches} + {@code split_with_indices}; empty text pieces are dropped as HF's split does. */
    private static List<Segment> split(String sentence, boolean atInputStart, Trie trie) {
        List<Segment> out = new ArrayList<>();
        if (sentence.isEmpty()) {
            return out;
        }
        if (trie.isEmpty()) {
            out.add(new Segment(sentence, -1, atInputStart));
            return out;
        }
        int startOffset = 0;
        int pos = 0;
        int n = sentence.length();
        while (pos < n) {
            long match = trie.longestAt(sentence, pos);
            if (match < 0) {
                pos++;
                continue;
            }
            AddedToken token = trie.token((int) (match >>> 32));
            int start = pos;
            int stop = (int) match;
            pos = stop;
            if (token.singleWord()) {
                boolean startSpace = start == 0 || !Unicode.isWordChar(sentence.codePointBefore(start));
                boolean stopSpace = stop == n || !Unicode.isWordChar(sentence.codePointAt(stop));
                if (!startSpace || !stopSpace) {
                    continue;
                }
            }
            if (token.lstrip()) {
                int newStart = start;
                while (newStart > 0 && Unicode.isWhiteSpace(sentence.codePointBefore(newStart))) {
                    newStart -= Character.charCount(sentence.codePointBefore(newStart));
                }
                // Whitespace already taken by the previous match stays with it.
                start = Math.max(newStart, startOffset);
            }
            if (token.rstrip()) {
                while (stop < n && Unicode.isWhiteSpace(sentence.codePointAt(stop))) {
                    stop += Character.charCount(sentence.codePointAt(stop));
                }
                pos = stop;
            }
            if (startOffset < start) {
                out.add(new Segment(sentence.substring(startOffset, start), -1, atInputStart && startOffset == 0));
            }
            out.add(new Segment(sentence.substring(start, stop), token.id(), atInputStart && start == 0));
            startOffset = stop;
        }
        if (startOffset < n) {
            out.add(new Segment(sentence.substring(startOffset), -1, atInputStart && startOffset == 0));
        }
        return out;
    }

    /** A character trie over token contents; each node knows the token ending there, if any. */
    private static final class Trie {
        private final Node root = new Node();
        private final List<AddedToken> tokens = new ArrayList<>();

        void add(String content, AddedToken token) {
            Node node = root;
            for (int i = 0; i < content.length(); i++) {
                node = node.children.computeIfAbsent(content.charAt(i), k -> new Node());
            }
            // HF keeps the first token registered for a given content.
            if (node.token < 0) {
                node.token = tokens.size();
                tokens.add(token);
            }
        }

        boolean isEmpty() {
            return tokens.isEmpty();
        }

        AddedToken token(int index) {
            return tokens.get(index);
        }

        /** {@code tokenIndex << 32 | endOffset} of the longest token starting at {@code pos}, or -1. */
        long longestAt(String s, int pos) {
            Node node = root;
            long best = -1;
            for (int i = pos; i < s.length(); i++) {
                node = node.children.get(s.charAt(i));
                if (node == null) {
                    break;
                }
                if (node.token >= 0) {
                    best = ((long) node.token << 32) | (i + 1);
                }
            }
            return best;
        }

        private static final class Node {
            final Map<Character, Node> children = new HashMap<>(4);
            int token = -1;
        }
    }
}
