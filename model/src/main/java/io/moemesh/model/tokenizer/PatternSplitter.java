package io.moemesh.model.tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code NormalizedString::split} of HF normalizer.rs: the text is covered by alternating non-match / match
 * ranges (tokenizer/pattern.rs {@code find_matches}; a zero-width match is an empty match range, which the
 * behaviors merge like any other), the behavior decides how ranges are merged or dropped, and empty results are
 * discarded.
 */
final class PatternSplitter {
    private PatternSplitter() {
    }

    static void split(PreTokenizer.Piece piece, Pattern pattern, boolean invert, SplitBehavior behavior,
                      List<PreTokenizer.Piece> out) {
        String text = piece.text();
        if (text.isEmpty()) {
            return;
        }
        // Ranges as parallel arrays: start, end, isMatch. At most 2 * matches + 1 of them.
        int cap = 8;
        int[] starts = new int[cap];
        int[] ends = new int[cap];
        boolean[] isMatch = new boolean[cap];
        int n = 0;
        Matcher m = pattern.matcher(text);
        int prev = 0;
        // onig's FindMatches (rust-onig 6.5 find.rs, the SysRegex iteration of HF's Split): search from lastEnd;
        // an empty match ending where the last match ended is skipped by searching again one character later,
        // any other empty match is a (zero-width) match like any other, so it still cuts the text. HF's Replace
        // iterates the same way, but ours (Normalizer.Replace, Decoder.Replace) uses Java's replaceAll, which also
        // takes an empty match right after a non-empty one: they differ only for patterns that can match the empty
        // string, which the usual Replace patterns (non-empty literals such as " " → "▁") cannot.
        int lastEnd = 0;
        int lastMatchEnd = -1;
        while (lastEnd <= text.length() && m.find(lastEnd)) {
            if (m.end() == m.start() && m.end() == lastMatchEnd) {
                lastEnd = lastEnd < text.length() ? text.offsetByCodePoints(lastEnd, 1) : lastEnd + 1;
                continue;
            }
            lastEnd = m.end();
            lastMatchEnd = m.end();
            if (n + 2 > cap) {
                cap *= 2;
                starts = Arrays.copyOf(starts, cap);
                ends = Arrays.copyOf(ends, cap);
                isMatch = Arrays.copyOf(isMatch, cap);
            }
            if (prev != m.start()) {
                starts[n] = prev;
                ends[n] = m.start();
                isMatch[n++] = invert;
            }
            starts[n] = m.start();
            ends[n] = m.end();
            isMatch[n++] = !invert;
            prev = m.end();
        }
        if (prev != text.length()) {
            if (n + 1 > cap) {
                cap *= 2;
                starts = Arrays.copyOf(starts, cap);
                ends = Arrays.copyOf(ends, cap);
                isMatch = Arrays.copyOf(isMatch, cap);
            }
            starts[n] = prev;
            ends[n] = text.length();
            isMatch[n++] = invert;
        }
        switch (behavior) {
            case ISOLATED -> {
                for (int i = 0; i < n; i++) {
                    emit(piece, starts[i], ends[i], out);
                }
            }
            case REMOVED -> {
                for (int i = 0; i < n; i++) {
                    if (!isMatch[i]) {
                        emit(piece, starts[i], ends[i], out);
                    }
                }
            }
            case CONTIGUOUS -> {
                // Adjacent ranges of the same kind are fused (the first range always opens a piece).
                int i = 0;
                while (i < n) {
                    int j = i;
                    while (j + 1 < n && isMatch[j + 1] == isMatch[i]) {
                        j++;
                    }
                    emit(piece, starts[i], ends[j], out);
                    i = j + 1;
                }
            }
            case MERGED_WITH_PREVIOUS -> {
                // A match extends the piece before it, unless that piece was itself a match.
                int openStart = -1;
                int openEnd = -1;
                boolean previousMatch = false;
                for (int i = 0; i < n; i++) {
                    if (isMatch[i] && !previousMatch && openStart >= 0) {
                        openEnd = ends[i];
                    } else {
                        if (openStart >= 0) {
                            emit(piece, openStart, openEnd, out);
                        }
                        openStart = starts[i];
                        openEnd = ends[i];
                    }
                    previousMatch = isMatch[i];
                }
                if (openStart >= 0) {
                    emit(piece, openStart, openEnd, out);
                }
            }
            case MERGED_WITH_NEXT -> {
                // Mirror image, computed right to left as HF does: a match starts the piece after it, unless
                // that piece was itself a match.
                int[] pieceStart = new int[n];
                int[] pieceEnd = new int[n];
                int count = 0;
                boolean previousMatch = false;
                for (int i = n - 1; i >= 0; i--) {
                    if (isMatch[i] && !previousMatch && count > 0) {
                        pieceStart[count - 1] = starts[i];
                    } else {
                        pieceStart[count] = starts[i];
                        pieceEnd[count++] = ends[i];
                    }
                    previousMatch = isMatch[i];
                }
                for (int k = count - 1; k >= 0; k--) {
                    emit(piece, pieceStart[k], pieceEnd[k], out);
                }
            }
        }
    }

    private static void emit(PreTokenizer.Piece piece, int start, int end, List<PreTokenizer.Piece> out) {
        if (end > start) {
            out.add(new PreTokenizer.Piece(piece.text().substring(start, end), piece.atInputStart() && start == 0));
        }
    }
}
