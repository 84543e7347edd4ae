package io.moemesh.model.tokenizer;

import java.text.Normalizer;
import java.text.Normalizer.Form;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link Normalizer#normalize} in time that stays near-linear on any input, with exactly its result.
 *
 * <p>Why: the JDK puts each combining mark in canonical order by insertion into the run of marks before it, so a
 * run of n marks whose classes alternate ({@code "a" + "\u0301\u0323".repeat(n)}) costs n² steps: a 1 MB prompt
 * took a minute. HF's normalizers (the unicode-normalization crate) are linear. So a text with a long run of marks
 * is normalized here by the definition instead: each code point is decomposed on its own (a call on a string of
 * one code point, cheap), each run of non-starters is sorted stably by canonical combining class in n log n, and,
 * for NFC and NFKC, the JDK composes the result. Given text already decomposed and in canonical order the JDK's
 * insertion never moves a mark, and its composition passes each run once (each composition removes one mark, and a
 * starter takes only a few), so that call is linear. Text without a long run keeps the JDK's own path, where the
 * quadratic term is bounded by the run length.
 *
 * <p>The combining classes come from the JDK's own normalizer rather than from a table, so they cannot disagree
 * with it (a table would have its own Unicode version): mark x has a higher class than mark y exactly when
 * NFD("xy") is "yx".
 */
final class UnicodeNormalization {
    /** Runs of at most this many code points that may begin with a non-starter keep the JDK's path. */
    static final int LONG_RUN = 8;
    /** Canonical combining class 230, the most common class of a non-starter. */
    private static final int COMBINING_ACUTE = 0x301;
    /** Canonical combining class 1, the lowest of a non-starter. */
    private static final int COMBINING_TILDE_OVERLAY = 0x334;

    private UnicodeNormalization() {
    }

    static String normalize(String text, Form form) {
        return hasLongRun(text) ? byCodePoint(text, form) : Normalizer.normalize(text, form);
    }

    /** Whether the text has more than {@link #LONG_RUN} consecutive code points that may begin with a non-starter. */
    static boolean hasLongRun(String text) {
        int run = 0;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            run = mayBeginWithNonStarter(cp) ? run + 1 : 0;
            if (run > LONG_RUN) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether the code point's canonical or compatibility decomposition may begin with a non-starter: every
     * non-starter is a mark (Mn or Mc), and the only other code points whose decomposition begins with one are
     * U+FF9E and U+FF9F (compatibility: U+3099 and U+309A). UnicodeNormalizationTest checks both on every code
     * point, so a JDK with a newer Unicode cannot make a long run go unnoticed.
     */
    static boolean mayBeginWithNonStarter(int cp) {
        // Nothing below U+0300 is a non-starter or decomposes to one.
        if (cp < 0x300) {
            return false;
        }
        return switch (Character.getType(cp)) {
            case Character.NON_SPACING_MARK, Character.COMBINING_SPACING_MARK, Character.ENCLOSING_MARK -> true;
            default -> cp == 0xFF9E || cp == 0xFF9F;
        };
    }

    /** The definition: full decomposition of each code point, canonical ordering, then (NFC, NFKC) composition. */
    static String byCodePoint(String text, Form form) {
        Form decomposition = form == Form.NFC || form == Form.NFD ? Form.NFD : Form.NFKD;
        int[] cps = decompose(text, decomposition);
        Map<Integer, Integer> rank = combiningClassRanks(cps);
        int n = cps.length;
        for (int start = 0; start < n; ) {
            if (rank.getOrDefault(cps[start], 0) == 0) {
                start++;
                continue;
            }
            int end = start + 1;
            while (end < n && rank.getOrDefault(cps[end], 0) != 0) {
                end++;
            }
            sortRun(cps, start, end, rank);
            start = end;
        }
        String decomposed = new String(cps, 0, n);
        return form == decomposition ? decomposed : Normalizer.normalize(decomposed, form);
    }

    private static int[] decompose(String text, Form decomposition) {
        Map<Integer, int[]> decompositions = new HashMap<>();
        IntList out = new IntList(text.length() + 16);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            // Below U+00A0 nothing decomposes, canonically or not.
            if (cp < 0xA0) {
                out.add(cp);
            } else {
                out.addAll(decompositions.computeIfAbsent(cp,
                        c -> Normalizer.normalize(Character.toString(c), decomposition).codePoints().toArray()));
            }
        }
        return out.toArray();
    }

    /** A stable sort of {@code cps[start, end)} by rank: the canonical ordering of one run of non-starters. */
    private static void sortRun(int[] cps, int start, int end, Map<Integer, Integer> rank) {
        if (end - start < 2) {
            return;
        }
        long[] keyed = new long[end - start];
        for (int i = start; i < end; i++) {
            // rank, then position: equal classes keep their order.
            keyed[i - start] = ((long) rank.get(cps[i]) << 32) | (i - start);
        }
        Arrays.sort(keyed);
        int[] run = Arrays.copyOfRange(cps, start, end);
        for (int i = 0; i < keyed.length; i++) {
            cps[start + i] = run[(int) keyed[i]];
        }
    }

    /**
     * For each distinct non-starter of the decomposed text, a rank from 1 that orders them as their canonical
     * combining classes do (equal classes, equal ranks); starters are absent.
     */
    private static Map<Integer, Integer> combiningClassRanks(int[] cps) {
        Map<Integer, Integer> rank = new HashMap<>();
        List<Integer> marks = new ArrayList<>();
        for (int cp : cps) {
            // Only marks can be non-starters (see mayBeginWithNonStarter); 0 marks a starter already seen.
            if (mayBeginWithNonStarter(cp) && !rank.containsKey(cp)) {
                rank.put(cp, 0);
                if (isNonStarter(cp)) {
                    marks.add(cp);
                }
            }
        }
        marks.sort(UnicodeNormalization::compareClasses);
        int r = 0;
        for (int i = 0; i < marks.size(); i++) {
            if (i == 0 || compareClasses(marks.get(i - 1), marks.get(i)) != 0) {
                r++;
            }
            rank.put(marks.get(i), r);
        }
        rank.values().removeIf(v -> v == 0);
        return rank;
    }

    /** ccc(x) != 0 for a code point that is its own decomposition: ccc(x) < 230 or ccc(x) > 1. */
    static boolean isNonStarter(int x) {
        return higherClass(COMBINING_ACUTE, x) || higherClass(x, COMBINING_TILDE_OVERLAY);
    }

    private static int compareClasses(int x, int y) {
        return higherClass(x, y) ? 1 : higherClass(y, x) ? -1 : 0;
    }

    /** ccc(x) > ccc(y) > 0, for two code points that are their own decompositions: NFD puts y before x. */
    private static boolean higherClass(int x, int y) {
        if (x == y) {
            return false;
        }
        String yx = Character.toString(y) + Character.toString(x);
        return Normalizer.normalize(Character.toString(x) + Character.toString(y), Form.NFD).equals(yx);
    }
}
