package io.moemesh.cli;

import io.moemesh.model.tokenizer.Tokenizer;
import java.io.PrintWriter;
import java.util.Arrays;

/**
 * Prints generated text as tokens arrive, so that the pieces join to exactly the text of decoding all ids at
 * once: a token that ends inside a UTF-8 sequence (shown as U+FFFD) is held back until the sequence completes.
 */
final class TextStream {
    private final Tokenizer tokenizer;
    private final PrintWriter out;
    private final boolean enabled;
    private int[] ids = new int[16];
    private int count;
    private int printed;

    TextStream(Tokenizer tokenizer, PrintWriter out, boolean enabled) {
        this.tokenizer = tokenizer;
        this.out = out;
        this.enabled = enabled;
    }

    void accept(int token) {
        if (count == ids.length) {
            ids = Arrays.copyOf(ids, count * 2);
        }
        ids[count++] = token;
        if (!enabled) {
            return;
        }
        String text = tokenizer.decode(Arrays.copyOf(ids, count), true);
        if (!text.endsWith("\uFFFD") && text.length() > printed) {
            out.print(text.substring(printed));
            out.flush();
            printed = text.length();
        }
    }

    void finish() {
        if (!enabled) {
            return;
        }
        String text = tokenizer.decode(Arrays.copyOf(ids, count), true);
        if (text.length() > printed) {
            out.print(text.substring(printed));
        }
        out.println();
        out.flush();
    }
}
