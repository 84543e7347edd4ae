package io.moemesh.gateway.serving;

import io.moemesh.model.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Pattern;

/**
 * Turns generated tokens into text deltas whose concatenation is exactly the non-streamed text: an incomplete
 * UTF-8 sequence (the decoder shows it as U+FFFD) and any tail that could be the start of a stop string are
 * held back until resolved; a stop string ends the text just before it (OpenAI semantics: the stop string is
 * not returned). Special tokens are skipped as the reference decoder skips them.
 *
 * <p>Incremental detokenization (vLLM's {@code detokenize_incrementally}): this runs on the engine thread for every
 * token, so it never decodes the whole completion again (O(n²) per request). It decodes only a window: the ids
 * from {@code prefixOffset}, the start of the last settled group, to the end. The text of the new ids is the
 * window's text minus the text of its settled part ({@code [prefixOffset, readOffset)}), decoded the same way so
 * that a decoder's context effects (a Metaspace decoder drops the first token's leading space) cancel out. When
 * that new text is longer and does not end in U+FFFD (no incomplete character), it is settled: appended for good,
 * and the window moves on. Each token is then decoded about twice, a few ids each time; only a run of tokens that
 * never completes a character (each new one ends in U+FFFD again) is decoded again with each token of the run, as
 * in vLLM.
 *
 * <p>Nothing is settled after a byte-fallback token ({@code <0xNN>}): Hugging Face's ByteFallback decoder decodes a
 * run of them together and, when the run as a whole is not valid UTF-8, gives one U+FFFD per byte, so a later byte
 * token can turn a character an earlier part of the run completed into U+FFFDs. A run is settled once a token that
 * is not a byte follows it; nor after a special token, which the decode skips, so the run goes on across it. Until
 * then the run's text is not streamed either: streamed text is never taken back, and the stream's concatenation is
 * the whole decode.
 */
public final class TextAssembler {
    /** The text of some ids (special tokens skipped): package-private so tests can count the decoded ids. */
    interface Decoder {
        String decode(int[] ids);
    }

    /** {@code <0xNN>}: a byte-fallback token's form (HF tokenizers' ByteFallback decoder). */
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-Fa-f]{2}>");

    private final Decoder decoder;
    /**
     * Whether a later token may still change the text of the ids up to this one: a byte-fallback token (its run's text
     * is decided when the run ends) or a skipped special token (the run goes on across it).
     */
    private final IntPredicate unsettling;
    private final List<String> stops;
    private int[] ids = new int[16];
    private int count;
    private int prefixOffset;
    private int readOffset;
    /** The decoded text so far: settled text (up to {@link #settled}) then the unsettled tail; cut at a stop. */
    private final StringBuilder text = new StringBuilder();
    /** Length of the text of ids [0, readOffset) in {@link #text}. */
    private int settled;
    private int emitted;
    private boolean stopped;

    public TextAssembler(Tokenizer tokenizer, List<String> stops) {
        this(ids -> tokenizer.decode(ids, true),
                id -> tokenizer.isSpecial(id)
                        || tokenizer.findToken(id).map(t -> BYTE_TOKEN.matcher(t).matches()).orElse(false), stops);
    }

    TextAssembler(Decoder decoder, IntPredicate unsettling, List<String> stops) {
        this.decoder = decoder;
        this.unsettling = unsettling;
        this.stops = stops.stream().filter(s -> !s.isEmpty()).toList();
    }

    /** Adds a token and returns the text that is now safe to send (possibly empty). */
    public String add(int token) {
        if (stopped) {
            return "";
        }
        if (count == ids.length) {
            ids = Arrays.copyOf(ids, count * 2);
        }
        ids[count++] = token;
        boolean open = unsettling.test(token);
        appendNewText(open);
        int stopAt = firstStop();
        if (stopAt >= 0) {
            stopped = true;
            text.setLength(stopAt);
            return take(text.length());
        }
        int safe = text.length();
        while (safe > emitted && text.charAt(safe - 1) == '\uFFFD') {
            safe--;
        }
        safe -= partialStopSuffix(safe);
        if (open) {
            // A later byte token may still turn this run's text into U+FFFDs: what is streamed is never taken back,
            // so the run's text waits until the run ends (or finish()).
            safe = Math.min(safe, settled);
        }
        return take(safe);
    }

    /**
     * Replaces the unsettled tail of {@link #text} with the text of ids [readOffset, count), settling it if whole.
     * @param open the last token may still change the text before it ({@link #unsettling})
     */
    private void appendNewText(boolean open) {
        String prefix = decoder.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String window = decoder.decode(Arrays.copyOfRange(ids, prefixOffset, count));
        String added = window.length() > prefix.length() ? window.substring(prefix.length()) : "";
        text.setLength(settled);
        text.append(added);
        if (!added.isEmpty() && added.charAt(added.length() - 1) != '\uFFFD' && !open) {
            settled = text.length();
            prefixOffset = readOffset;
            readOffset = count;
        }
    }

    /** The rest of the text at the end of generation: whatever was held back. */
    public String finish() {
        return take(text.length());
    }

    /** True once a stop string appeared: the sequence should end with finish reason "stop". */
    public boolean stopped() {
        return stopped;
    }

    public String text() {
        return text.toString();
    }

    private String take(int upTo) {
        if (upTo <= emitted) {
            return "";
        }
        String delta = text.substring(emitted, upTo);
        emitted = upTo;
        return delta;
    }

    /** Where the first stop string starts in the text, looking only where one could end past {@link #emitted}. */
    private int firstStop() {
        int best = -1;
        for (String s : stops) {
            int from = Math.max(0, emitted - s.length() + 1);
            int i = text.indexOf(s, from);
            if (i >= 0 && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best;
    }

    /** Length of the longest suffix of text[0, end) that is a proper prefix of some stop string. */
    private int partialStopSuffix(int end) {
        int hold = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, end - emitted); k > hold; k--) {
                if (startsAt(end - k, s, k)) {
                    hold = k;
                    break;
                }
            }
        }
        return hold;
    }

    /** True when text[at, at + k) equals s[0, k). */
    private boolean startsAt(int at, String s, int k) {
        for (int j = 0; j < k; j++) {
            if (text.charAt(at + j) != s.charAt(j)) {
                return false;
            }
        }
        return true;
    }
}
