package io.moemesh.model.tokenizer;

import java.util.Arrays;

/**
 * GPT-2's reversible byte-to-character table ({@code bytes_to_unicode} in HF byte_level.rs): printable Latin-1
 * bytes map to themselves and the other 68 bytes to U+0100.. in order, so every byte sequence becomes a string of
 * visible characters (a space becomes "Ġ", a newline "Ċ").
 */
final class ByteLevelAlphabet {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[0x180];

    static {
        Arrays.fill(CHAR_TO_BYTE, -1);
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + next++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevelAlphabet() {
    }

    /** The 256 characters of the alphabet, one string each. */
    static java.util.stream.Stream<String> characters() {
        return java.util.stream.IntStream.range(0, 256).mapToObj(b -> String.valueOf(BYTE_TO_CHAR[b]));
    }

    /** Each UTF-8 byte of {@code text} as its alphabet character. */
    static String encode(String text) {
        byte[] bytes = Utf8.encode(text);
        char[] out = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            out[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(out);
    }

    /**
     * Appends the bytes {@code token} stands for, or returns false (appending nothing) when one of its characters
     * is outside the alphabet; HF then uses the token's own UTF-8 bytes (decoders/byte_level.rs).
     */
    static boolean appendBytes(String token, Utf8.Bytes out) {
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
                return false;
            }
        }
        for (int i = 0; i < token.length(); i++) {
            out.add(CHAR_TO_BYTE[token.charAt(i)]);
        }
        return true;
    }
}
