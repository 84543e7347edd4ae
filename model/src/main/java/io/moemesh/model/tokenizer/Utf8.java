package io.moemesh.model.tokenizer;

import java.io.ByteArrayOutputStream;

/**
 * UTF-8 decoding with Rust's exact error semantics, because byte-level decoders can produce invalid sequences
 * (a token boundary inside a multi-byte character) and HF's output must be matched character for character.
 */
final class Utf8 {
    private static final char REPLACEMENT = '\uFFFD';

    private Utf8() {
    }

    /**
     * Rust's {@code String::from_utf8_lossy}: each maximal prefix of a would-be valid sequence that turns out to be
     * ill-formed becomes one U+FFFD (the W3C/Unicode "maximal subpart" practice). Java's CharsetDecoder is not
     * documented to follow the same rule, so it is written out.
     */
    static String decodeLossy(byte[] bytes, int length) {
        StringBuilder out = new StringBuilder(length);
        int i = 0;
        while (i < length) {
            int consumed = validSequenceLength(bytes, i, length);
            if (consumed > 0) {
                appendCodePoint(out, bytes, i, consumed);
                i += consumed;
            } else {
                out.append(REPLACEMENT);
                i += -consumed;
            }
        }
        return out.toString();
    }

    /** Rust's {@code String::from_utf8}: the decoded text, or null when the bytes are not valid UTF-8. */
    static String decodeStrict(byte[] bytes, int length) {
        StringBuilder out = new StringBuilder(length);
        int i = 0;
        while (i < length) {
            int consumed = validSequenceLength(bytes, i, length);
            if (consumed <= 0) {
                return null;
            }
            appendCodePoint(out, bytes, i, consumed);
            i += consumed;
        }
        return out.toString();
    }

    static byte[] encode(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /**
     * The sequence at {@code i} as {@link #decodeLossy} reads it, telling apart one that {@code n} cuts off: its
     * length when well-formed; minus the length of the ill-formed subpart that becomes one U+FFFD; 0 when the bytes
     * from {@code i} to {@code n} are the start of a well-formed sequence (more bytes may complete it, or prove it
     * ill-formed: one code point with all of these bytes either way).
     */
    static int sequenceAt(byte[] b, int i, int n) {
        int r = validSequenceLength(b, i, n);
        int b0 = b[i] & 0xFF;
        return r < 0 && b0 >= 0xC2 && b0 <= 0xF4 && i - r >= n ? 0 : r;
    }

    /**
     * Length of the well-formed sequence starting at {@code i}, or minus the length of the maximal ill-formed
     * subpart to replace with a single U+FFFD (mirrors core::str::lossy::Utf8Chunks).
     */
    private static int validSequenceLength(byte[] b, int i, int n) {
        int b0 = b[i] & 0xFF;
        if (b0 < 0x80) {
            return 1;
        }
        int width;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            width = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            width = 3;
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            width = 4;
        } else {
            return -1;
        }
        int lo = 0x80;
        int hi = 0xBF;
        if (b0 == 0xE0) {
            lo = 0xA0;
        } else if (b0 == 0xED) {
            hi = 0x9F;
        } else if (b0 == 0xF0) {
            lo = 0x90;
        } else if (b0 == 0xF4) {
            hi = 0x8F;
        }
        if (i + 1 >= n || !in(b[i + 1], lo, hi)) {
            return -1;
        }
        for (int k = 2; k < width; k++) {
            if (i + k >= n || !in(b[i + k], 0x80, 0xBF)) {
                return -k;
            }
        }
        return width;
    }

    private static boolean in(byte b, int lo, int hi) {
        int v = b & 0xFF;
        return v >= lo && v <= hi;
    }

    private static void appendCodePoint(StringBuilder out, byte[] b, int i, int width) {
        int b0 = b[i] & 0xFF;
        int cp = switch (width) {
            case 1 -> b0;
            case 2 -> ((b0 & 0x1F) << 6) | (b[i + 1] & 0x3F);
            case 3 -> ((b0 & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F);
            default -> ((b0 & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F);
        };
        out.appendCodePoint(cp);
    }

    /** A growable byte buffer without the synchronization of {@link ByteArrayOutputStream}. */
    static final class Bytes {
        private byte[] data = new byte[64];
        private int size;

        void add(int b) {
            if (size == data.length) {
                data = java.util.Arrays.copyOf(data, size * 2);
            }
            data[size++] = (byte) b;
        }

        void addAll(byte[] bs) {
            for (byte b : bs) {
                add(b);
            }
        }

        int size() {
            return size;
        }

        void clear() {
            size = 0;
        }

        String lossy() {
            return decodeLossy(data, size);
        }

        String strictOrNull() {
            return decodeStrict(data, size);
        }

        byte[] toArray() {
            return java.util.Arrays.copyOf(data, size);
        }
    }
}
