package io.moemesh.model.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code decoder} step: HF's {@code Decoder::decode_chain} turns the list of token strings into another list
 * (decoders/mod.rs); the result is the concatenation. Decoders in a Sequence see the previous one's list, so a
 * Strip after a Fuse acts on the fused string, while a Strip before it acts on every token.
 */
sealed interface Decoder {
    List<String> decodeChain(List<String> tokens);

    default String decode(List<String> tokens) {
        return String.join("", decodeChain(tokens));
    }

    /**
     * The bytes {@code token} alone stands for when this decoder spells it as bytes (byte-level characters, a
     * {@code <0xNN>} byte-fallback token), before they are read as UTF-8: part of a character stays those bytes
     * instead of becoming U+FFFD. Null when this decoder leaves the token as text.
     */
    default byte[] tokenBytes(String token) {
        return null;
    }

    /** decoders/sequence.rs. */
    record Sequence(List<Decoder> decoders) implements Decoder {
        public Sequence {
            decoders = List.copyOf(decoders);
        }

        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> t = tokens;
            for (Decoder d : decoders) {
                t = d.decodeChain(t);
            }
            return t;
        }

        /** The first decoder that spells bytes, given the token as the decoders before it leave it. */
        @Override
        public byte[] tokenBytes(String token) {
            List<String> t = List.of(token);
            for (Decoder d : decoders) {
                if (t.size() != 1) {
                    return null;
                }
                byte[] bytes = d.tokenBytes(t.getFirst());
                if (bytes != null) {
                    return bytes;
                }
                t = d.decodeChain(t);
            }
            return null;
        }
    }

    /**
     * decoders/byte_level.rs: each token's characters are mapped back to bytes (a token with a character outside
     * the byte alphabet, such as an added token, contributes its own UTF-8 bytes), all bytes are concatenated and
     * decoded with {@code String::from_utf8_lossy}.
     */
    record ByteLevel() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            Utf8.Bytes bytes = new Utf8.Bytes();
            for (String t : tokens) {
                if (!ByteLevelAlphabet.appendBytes(t, bytes)) {
                    bytes.addAll(Utf8.encode(t));
                }
            }
            return List.of(bytes.lossy());
        }

        @Override
        public byte[] tokenBytes(String token) {
            Utf8.Bytes bytes = new Utf8.Bytes();
            return ByteLevelAlphabet.appendBytes(token, bytes) ? bytes.toArray() : Utf8.encode(token);
        }
    }

    /** normalizers/replace.rs used as a decoder: the replacement applied to every token. */
    record Replace(Pattern pattern, String content) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            String replacement = Matcher.quoteReplacement(content);
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                out.add(pattern.matcher(t).replaceAll(replacement));
            }
            return out;
        }
    }

    /**
     * decoders/byte_fallback.rs: runs of {@code <0xNN>} tokens become the text their bytes spell; a run that is not
     * valid UTF-8 becomes one U+FFFD per byte (not from_utf8_lossy's per-subpart rule).
     */
    record ByteFallback() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            Utf8.Bytes run = new Utf8.Bytes();
            for (String t : tokens) {
                int b = byteOf(t);
                if (b >= 0) {
                    run.add(b);
                } else {
                    flush(run, out);
                    out.add(t);
                }
            }
            flush(run, out);
            return out;
        }

        @Override
        public byte[] tokenBytes(String token) {
            int b = byteOf(token);
            return b < 0 ? null : new byte[] {(byte) b};
        }

        private static void flush(Utf8.Bytes run, List<String> out) {
            if (run.size() == 0) {
                return;
            }
            String s = run.strictOrNull();
            if (s != null) {
                out.add(s);
            } else {
                for (int i = 0; i < run.size(); i++) {
                    out.add("\uFFFD");
                }
            }
            run.clear();
        }

        /** The byte of a 6-character {@code <0xNN>} token, or -1. */
        private static int byteOf(String t) {
            if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') {
                return -1;
            }
            int hi = Character.digit(t.charAt(3), 16);
            int lo = Character.digit(t.charAt(4), 16);
            // Character.digit accepts non-ASCII digits; Rust's from_str_radix does not.
            if (hi < 0 || lo < 0 || t.charAt(3) > 'f' || t.charAt(4) > 'f') {
                return -1;
            }
            return hi * 16 + lo;
        }
    }

    /** decoders/fuse.rs: all tokens joined into one. */
    record Fuse() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            return List.of(String.join("", tokens));
        }
    }

    /**
     * decoders/strip.rs: removes up to {@code start} leading and {@code stop} trailing occurrences of the
     * character {@code content} from every token (counted in code points).
     */
    record Strip(int content, int start, int stop) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                int[] cps = t.codePoints().toArray();
                int from = 0;
                while (from < start && from < cps.length && cps[from] == content) {
                    from++;
                }
                int to = cps.length;
                int cut = 0;
                while (cut < stop && to > from && cps[to - 1] == content) {
                    to--;
                    cut++;
                }
                out.add(new String(cps, from, to - from));
            }
            return out;
        }
    }

    /**
     * The Metaspace decoder (pre_tokenizers/metaspace.rs): the replacement character becomes a space, except in
     * the first token where, unless prepend_scheme is "never", it is dropped (every occurrence there, as in HF).
     */
    record Metaspace(int replacement, PreTokenizer.PrependScheme prependScheme) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                boolean drop = i == 0 && prependScheme != PreTokenizer.PrependScheme.NEVER;
                StringBuilder sb = new StringBuilder(tokens.get(i).length());
                tokens.get(i).codePoints().forEach(cp -> {
                    if (cp != replacement) {
                        sb.appendCodePoint(cp);
                    } else if (!drop) {
                        sb.append(' ');
                    }
                });
                out.add(sb.toString());
            }
            return out;
        }
    }
}
