package io.moemesh.model.tokenizer;

import java.util.Arrays;

/**
 * Where each token's text starts in the decoded text of a run of tokens, in code points (as Python, and so OpenAI's
 * and vLLM's servers, count): completions logprobs' {@code text_offset}. Tokens are added one at a time and each is
 * answered at once, from itself and the tokens before it, so a stream can send it with the token. Bytes that are not
 * valid UTF-8 count as the tokenizer's decoder spells them in {@link Tokenizer#decode}: a byte-level decoder reads
 * all bytes as one {@code from_utf8_lossy} (one U+FFFD per maximal ill-formed subpart); a byte-fallback decoder reads
 * each run of {@code <0xNN>} tokens on its own (a special token, which the text skips, does not end a run) and spells
 * a run that is not valid UTF-8 as one U+FFFD per byte; any other token adds its {@link Tokenizer#tokenText}. So
 * the text starts with a token's text at its offset whenever that text has no U+FFFD. A token that starts inside a
 * character, or inside the bytes of one U+FFFD, points where that character starts; a byte token of a byte-fallback
 * run still open is counted as if the run stays valid (a later byte may make every byte of it a U+FFFD: only the
 * offsets of the tokens after the run see that). A special token adds nothing. One per text; not thread-safe.
 */
public final class TextOffsets {
    private enum Spelling {
        /** Every token is bytes, all read as one from_utf8_lossy (decoders/byte_level.rs). */
        LOSSY_BYTES,
        /** Runs of byte tokens, each read strictly, one U+FFFD per byte when not valid (decoders/byte_fallback.rs). */
        BYTE_RUNS,
        /** Every token is its text. */
        TEXT
    }

    private final Tokenizer tokenizer;
    private final Spelling spelling;
    /** No decoder: Hugging Face joins the tokens with spaces. */
    private final boolean spaced;
    /** Code points of the text before {@link #open}: final. */
    private int settled;
    /**
     * Bytes whose text a later token may still change: a sequence cut off at the end ({@link Spelling#LOSSY_BYTES}),
     * or the byte-fallback run going on ({@link Spelling#BYTE_RUNS}).
     */
    private byte[] open = new byte[8];
    private int openLength;
    private boolean anyText;

    TextOffsets(Tokenizer tokenizer, Decoder decoder) {
        this.tokenizer = tokenizer;
        this.spaced = decoder == null;
        this.spelling = uses(decoder, Decoder.ByteLevel.class) ? Spelling.LOSSY_BYTES
                : uses(decoder, Decoder.ByteFallback.class) ? Spelling.BYTE_RUNS : Spelling.TEXT;
    }

    private static boolean uses(Decoder d, Class<? extends Decoder> kind) {
        return kind.isInstance(d) || d instanceof Decoder.Sequence s && s.decoders().stream().anyMatch(x -> uses(x, kind));
    }

    /** Adds token {@code id} to the text and returns where its text starts there. */
    public int add(int id) {
        if (tokenizer.isSpecial(id) || tokenizer.findToken(id).isEmpty()) {
            return settled + count(openLength, false);
        }
        byte[] bytes = spelling == Spelling.LOSSY_BYTES ? tokenizer.tokenBytes(id)
                : spelling == Spelling.BYTE_RUNS ? tokenizer.spelledBytes(id) : null;
        if (bytes == null) {
            // Text: it ends a byte-fallback run, which is then valid or not for good.
            settled += count(openLength, true);
            openLength = 0;
            int at = settled + (spaced && anyText ? 1 : 0);
            String text = tokenizer.tokenText(id);
            settled = at + text.codePointCount(0, text.length());
            anyText = true;
            return at;
        }
        int first = openLength;
        if (openLength + bytes.length > open.length) {
            open = Arrays.copyOf(open, Math.max(open.length * 2, openLength + bytes.length));
        }
        System.arraycopy(bytes, 0, open, openLength, bytes.length);
        openLength += bytes.length;
        int at = settled + count(first, false);
        if (spelling == Spelling.LOSSY_BYTES) {
            settleLossy();
        }
        return at;
    }

    /**
     * Code points the open bytes before byte {@code k} make (with {@code k} inside a character: that character's
     * index); {@code closed}: no byte follows them (a byte-fallback run ended), so a cut-off sequence is ill-formed.
     */
    private int count(int k, boolean closed) {
        if (spelling == Spelling.BYTE_RUNS && !validRun(closed)) {
            // Not valid UTF-8, for good: one U+FFFD per byte of the run.
            return k;
        }
        int cps = 0;
        for (int i = 0; i < openLength; cps++) {
            int r = Utf8.sequenceAt(open, i, openLength);
            int next = r == 0 ? openLength : i + Math.abs(r);
            if (next > k) {
                return cps;
            }
            i = next;
        }
        return cps;
    }

    /** The open run is valid UTF-8 so far (its last character may be cut off, unless {@code closed}). */
    private boolean validRun(boolean closed) {
        for (int i = 0; i < openLength; ) {
            int r = Utf8.sequenceAt(open, i, openLength);
            if (r < 0 || r == 0 && closed) {
                return false;
            }
            i = r == 0 ? openLength : i + r;
        }
        return true;
    }

    /** Byte-level: everything before a cut-off sequence at the end is final; only that sequence stays open. */
    private void settleLossy() {
        int i = 0;
        while (i < openLength) {
            int r = Utf8.sequenceAt(open, i, openLength);
            if (r == 0) {
                break;
            }
            settled++;
            i += Math.abs(r);
        }
        System.arraycopy(open, i, open, 0, openLength - i);
        openLength -= i;
    }
}
