package io.moemesh.gateway.serving;

import io.moemesh.model.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.List;

/**
 * Turns generated tokens into text deltas whose concatenation is exactly the non-streamed text: an incomplete
 * UTF-8 sequence (the decoder shows it as U+FFFD) and any tail that could be the start of a stop string are
 * held back until resolved; a stop string ends the text just before it (OpenAI semantics: the stop string is
 * not returned). Special tokens are skipped as the reference decoder skips them.
 */
public final class TextAssembler {
    private final Tokenizer tokenizer;
    private final List<String> stops;
    private int[] ids = new int[16];
    private int count;
    private int emitted;
    private String text = "";
    private boolean stopped;

    public TextAssembler(Tokenizer tokenizer, List<String> stops) {
        this.tokenizer = tokenizer;
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
        String full = tokenizer.decode(Arrays.copyOf(ids, count), true);
        int stopAt = firstStop(full);
        if (stopAt >= 0) {
            stopped = true;
            text = full.substring(0, stopAt);
            return take(text.length());
        }
        text = full;
        int safe = full.length();
        while (safe > emitted && full.charAt(safe - 1) == '\uFFFD') {
            safe--;
        }
        safe -= partialStopSuffix(full, safe);
        return take(safe);
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
        return text;
    }

    private String take(int upTo) {
        if (upTo <= emitted) {
            return "";
        }
        String delta = text.substring(emitted, upTo);
        emitted = upTo;
        return delta;
    }

    private int firstStop(String full) {
        int best = -1;
        for (String s : stops) {
            int from = Math.max(0, emitted - s.length() + 1);
            int i = full.indexOf(s, from);
            if (i >= 0 && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best;
    }

    /** Length of the longest suffix of full[0, end) that is a proper prefix of some stop string. */
    private int partialStopSuffix(String full, int end) {
        int hold = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, end - emitted); k > hold; k--) {
                if (full.regionMatches(end - k, s, 0, k)) {
                    hold = k;
                    break;
                }
            }
        }
        return hold;
    }
}
