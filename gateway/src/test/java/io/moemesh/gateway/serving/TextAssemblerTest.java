package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The text assembler on the tiny models' byte-level BPE tokenizer: the deltas it returns concatenate to exactly
 * the text a non-streamed response carries, however the generation is cut; incomplete UTF-8 and possible starts
 * of stop strings are held back until resolved; a stop string ends the text just before it (OpenAI semantics)
 * and nothing follows; special tokens are skipped as {@code Tokenizer.decode(ids, true)} skips them.
 */
class TextAssemblerTest {
    private static final Tokenizer TOKENIZER = Tokenizer.load(
            TestModels.dir(TestModels.MIXTRAL).resolve("tokenizer.json"));
    private static final int BOS = TOKENIZER.tokenId("<s>").orElseThrow();
    private static final int EOS = TOKENIZER.tokenId("</s>").orElseThrow();
    private static final int UNK = TOKENIZER.tokenId("<unk>").orElseThrow();

    /** The ids of the pieces, each encoded on its own: the test decides where the token boundaries are. */
    private static int[] ids(String... pieces) {
        return Stream.of(pieces).flatMapToInt(p -> Arrays.stream(TOKENIZER.encode(p))).toArray();
    }

    /** One id per character of {@code text} (ASCII, whose characters are single byte-level tokens). */
    private static int[] perChar(String text) {
        return ids(text.chars().mapToObj(c -> String.valueOf((char) c)).toArray(String[]::new));
    }

    private static int[] concat(int[]... parts) {
        return Stream.of(parts).flatMapToInt(Arrays::stream).toArray();
    }

    private static String decode(int[] ids) {
        return TOKENIZER.decode(ids, true);
    }

    /** What one generation produced: the delta after each token, then what finish() released. */
    private record Run(TextAssembler assembler, List<String> deltas, String tail) {
        String streamed() {
            return String.join("", deltas) + tail;
        }
    }

    private static Run run(List<String> stops, int[] ids) {
        TextAssembler a = new TextAssembler(TOKENIZER, new int[0], stops);
        List<String> deltas = new ArrayList<>();
        for (int id : ids) {
            deltas.add(a.add(id));
        }
        return new Run(a, deltas, a.finish());
    }

    /**
     * Feeds each piece's tokens and returns, per piece, what its tokens sent together (the tiny vocabulary spells
     * most words in several tokens), then what finish() released.
     */
    private static Run runPieces(List<String> stops, String... pieces) {
        TextAssembler a = new TextAssembler(TOKENIZER, new int[0], stops);
        List<String> sent = new ArrayList<>();
        for (String p : pieces) {
            StringBuilder b = new StringBuilder();
            for (int id : TOKENIZER.encode(p)) {
                b.append(a.add(id));
            }
            sent.add(b.toString());
        }
        return new Run(a, sent, a.finish());
    }

    /** The pieces of {@code prefix}, then one piece per character of {@code chars}, then {@code suffix}. */
    private static String[] pieces(String prefix, String chars, String suffix) {
        List<String> p = new ArrayList<>();
        p.add(prefix);
        chars.chars().forEach(c -> p.add(String.valueOf((char) c)));
        p.add(suffix);
        return p.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"Hello world", "héllo wörld", "price: 5 € or 😀", "日本語のテキスト", "a\nb\tc  d"})
    void deltas_concatenateToTheFullText_wherever_theGenerationIsCut(String text) {
        int[] all = TOKENIZER.encode(text);
        for (int cut = 0; cut <= all.length; cut++) {
            int[] prefix = Arrays.copyOf(all, cut);
            Run r = run(List.of(), prefix);
            assertThat(r.streamed()).as("cut after %d tokens", cut).isEqualTo(decode(prefix))
                    .isEqualTo(r.assembler().text());
            assertThat(r.assembler().stopped()).isFalse();
        }
    }

    static Stream<Arguments> multiByteCharacters() {
        return Stream.of(Arguments.of("é", 2), Arguments.of("€", 3), Arguments.of("😀", 4));
    }

    @ParameterizedTest(name = "{0} in {1} byte tokens")
    @MethodSource("multiByteCharacters")
    void incompleteUtf8_heldBack_untilTheLastByteOfTheCharacter(String character, int byteTokens) {
        int[] charIds = TOKENIZER.encode(character);
        assertThat(charIds).as("the tokenizer spells %s byte by byte", character).hasSize(byteTokens);

        Run r = run(List.of(), concat(ids("a"), charIds, ids("b")));
        List<String> expected = new ArrayList<>();
        expected.add("a");
        expected.addAll(IntStream.range(1, byteTokens).mapToObj(i -> "").toList());
        expected.add(character);
        expected.add("b");
        assertThat(r.deltas()).containsExactlyElementsOf(expected);
        assertThat(r.tail()).isEmpty();
        assertThat(r.assembler().text()).isEqualTo("a" + character + "b");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("multiByteCharacters")
    void finish_releasesAnIncompleteCharacter_asTheReferenceDecoderShowsIt(String character, int byteTokens) {
        int[] firstByte = Arrays.copyOf(TOKENIZER.encode(character), 1);
        int[] ids = concat(ids("a"), firstByte);
        Run r = run(List.of(), ids);
        assertThat(r.deltas()).containsExactly("a", "");
        assertThat(r.tail()).isEqualTo("\uFFFD");
        assertThat(r.assembler().text()).isEqualTo(decode(ids)).isEqualTo("a\uFFFD");
    }

    @Test
    void invalidUtf8_followedByText_isSentWithTheText() {
        // A continuation byte alone can never become a character: once text follows it, it is final.
        int[] continuation = Arrays.copyOfRange(TOKENIZER.encode("€"), 1, 2);
        Run r = run(List.of(), concat(ids("a"), continuation, ids("b")));
        assertThat(r.deltas()).containsExactly("a", "", "\uFFFDb");
        assertThat(r.streamed()).isEqualTo(r.assembler().text()).isEqualTo("a\uFFFDb");
    }

    @Test
    void stopString_acrossTokenBoundaries_endsTheTextJustBeforeIt() {
        int[] stop = TOKENIZER.encode("STOP");
        assertThat(stop).as("STOP spans several tokens").hasSizeGreaterThan(1);
        Run r = runPieces(List.of("STOP"), pieces("Hello ", "STOP", " world"));
        assertThat(r.deltas()).containsExactly("Hello ", "", "", "", "", "");
        assertThat(r.tail()).isEmpty();
        assertThat(r.assembler().text()).isEqualTo("Hello ");
        assertThat(r.assembler().stopped()).isTrue();
    }

    @Test
    void heldStart_ofAStopString_isReleased_whenTheTextGoesAnotherWay() {
        Run r = runPieces(List.of("STOP"), pieces("Hello ", "STOW", "!"));
        assertThat(r.deltas()).containsExactly("Hello ", "", "", "", "STOW", "!");
        assertThat(r.assembler().stopped()).isFalse();
        assertThat(r.streamed()).isEqualTo("Hello STOW!");
    }

    @Test
    void heldStart_ofAStopString_isReleasedByFinish_whenTheGenerationEndsInside() {
        Run r = runPieces(List.of("STOP"), pieces("Hi ", "STO", ""));
        assertThat(r.deltas()).containsExactly("Hi ", "", "", "", "");
        assertThat(r.tail()).isEqualTo("STO");
        assertThat(r.assembler().text()).isEqualTo("Hi STO");
        assertThat(r.assembler().stopped()).isFalse();
    }

    @Test
    void stopString_withAMultiByteCharacterSplitAcrossTokens_isFound() {
        Run r = run(List.of("é!"), concat(ids("caf"), TOKENIZER.encode("é"), ids("!"), ids(" more")));
        assertThat(r.assembler().text()).isEqualTo("caf");
        assertThat(r.assembler().stopped()).isTrue();
        assertThat(r.streamed()).isEqualTo("caf");
    }

    static Stream<Arguments> severalStops() {
        return Stream.of(
                // text fed one character per token, stops, text returned
                Arguments.of("abcdef", List.of("de", "bc"), "a"),
                Arguments.of("abcdef", List.of("bc", "de"), "a"),
                Arguments.of("xabcx", List.of("abc", "ab"), "x"),
                Arguments.of("xabcx", List.of("ab", "abc"), "x"),
                Arguments.of("xaby", List.of("abc", "ab"), "x"),
                Arguments.of("xaby", List.of("abc"), "xaby"),
                Arguments.of("aab", List.of("ab"), "a"),
                Arguments.of("stop", List.of("stop"), ""),
                Arguments.of("one two", List.of("", "two"), "one "),
                // The text is checked after every token: "c" is complete before "bcd" is, so "c" ends the text.
                Arguments.of("abcd", List.of("bcd", "c"), "ab"));
    }

    @ParameterizedTest(name = "{0} with stops {1} → \"{2}\"")
    @MethodSource("severalStops")
    void severalStops_theFirstToAppear_endsTheText_atItsStart(String text, List<String> stops, String expected) {
        Run r = run(stops, perChar(text));
        assertThat(r.assembler().text()).isEqualTo(expected);
        assertThat(r.streamed()).isEqualTo(expected);
        assertThat(r.assembler().stopped()).isEqualTo(!expected.equals(text));
    }

    @Test
    void stopsCompletedByTheSameToken_theEarliestInTheTextWins() {
        // " the" is one token and completes both stops at once; "a th" starts first.
        int[] the = TOKENIZER.encode(" the");
        assertThat(the).as("\" the\" is one token").hasSize(1);
        Run r = run(List.of("he", "a th"), concat(perChar("xa"), the));
        assertThat(r.assembler().text()).isEqualTo("x");
        assertThat(r.streamed()).isEqualTo("x");
    }

    @Test
    void nothingIsSent_afterAStop() {
        TextAssembler a = new TextAssembler(TOKENIZER, new int[0], List.of("!"));
        assertThat(a.add(ids("H")[0])).isEqualTo("H");
        assertThat(a.add(ids("!")[0])).isEmpty();
        assertThat(a.stopped()).isTrue();
        for (int id : ids(" more text é")) {
            assertThat(a.add(id)).isEmpty();
        }
        assertThat(a.finish()).isEmpty();
        assertThat(a.text()).isEqualTo("H");
    }

    @Test
    void specialTokens_skipped_likeTheReferenceDecoder() {
        int[] ids = concat(new int[] {BOS}, ids("H"), new int[] {UNK}, ids(" the"), new int[] {EOS});
        Run r = run(List.of(), ids);
        assertThat(r.deltas()).containsExactly("", "H", "", " the", "");
        assertThat(r.assembler().text()).isEqualTo(decode(ids)).isEqualTo("H the");
    }

    @Test
    void specialToken_isNotText_soItNeitherMatchesNorBreaksAStop() {
        // "</s>" as a stop never matches the skipped token; a special token between S and TOP does not split the
        // decoded text, so the stop is still found.
        Run r = run(List.of("</s>", "STOP"), concat(ids("a"), new int[] {EOS}, perChar("S"), new int[] {BOS},
                perChar("TOP"), ids("b")));
        assertThat(r.assembler().text()).isEqualTo("a");
        assertThat(r.assembler().stopped()).isTrue();
    }

    // ---- properties: random token sequences (byte-level pieces, specials, invalid UTF-8) and random stops ----

    /** A generation: the tokens the model produced and the request's stop strings. */
    record Generation(int[] ids, List<String> stops) {
        @Override
        public String toString() {
            return "ids=" + Arrays.toString(ids) + " text=" + decode(ids) + " stops=" + stops;
        }
    }

    /** What the non-streamed response must carry: decode after every token, cut at the first stop to appear. */
    private record Expected(String text, boolean stopped) {
    }

    private static Expected reference(int[] ids, List<String> stops) {
        for (int k = 1; k <= ids.length; k++) {
            String d = decode(Arrays.copyOf(ids, k));
            int cut = stops.stream().filter(s -> !s.isEmpty()).mapToInt(d::indexOf).filter(i -> i >= 0).min()
                    .orElse(-1);
            if (cut >= 0) {
                return new Expected(d.substring(0, cut), true);
            }
        }
        return new Expected(decode(ids), false);
    }

    @Provide
    Arbitrary<int[]> tokens() {
        Arbitrary<Integer> anyId = Arbitraries.integers().between(0, TOKENIZER.vocabSize() - 1);
        // Whole words and multi-byte characters as the tokenizer spells them, so that stops and UTF-8 split
        // across tokens are common, not only random bytes.
        Arbitrary<int[]> piece = Arbitraries.oneOf(
                anyId.map(i -> new int[] {i}),
                Arbitraries.of("é", "€", "😀", "日本", "STOP", " stop", "ab", "abc", "\n\n", " the")
                        .map(TOKENIZER::encode));
        return piece.list().ofMaxSize(25).map(l -> l.stream().flatMapToInt(Arrays::stream).toArray());
    }

    @Provide
    Arbitrary<Generation> generations() {
        return tokens().flatMap(ids -> {
            String text = decode(ids);
            Arbitrary<String> fromText = text.isEmpty() ? Arbitraries.just("x")
                    : Arbitraries.integers().between(0, text.length() - 1).flatMap(from -> Arbitraries.integers()
                            .between(from + 1, Math.min(text.length(), from + 6)).map(to -> text.substring(from, to)));
            Arbitrary<String> stop = Arbitraries.oneOf(fromText,
                    Arbitraries.of("STOP", "ab", "b", "abc", "é", "\n\n", "😀").injectDuplicates(0.1),
                    Arbitraries.strings().withChars("abSTOP é\n").ofMinLength(0).ofMaxLength(3));
            return stop.list().ofMaxSize(4).map(stops -> new Generation(ids, stops));
        });
    }

    @Property
    void deltas_concatenateTo_text_whichIsTheReferenceTextCutAtTheFirstStop_andHoldsNoStop(
            @ForAll("generations") Generation g) {
        Run r = run(g.stops(), g.ids());
        Expected expected = reference(g.ids(), g.stops());
        assertThat(r.streamed()).isEqualTo(r.assembler().text());
        assertThat(r.assembler().text()).isEqualTo(expected.text());
        assertThat(r.assembler().stopped()).isEqualTo(expected.stopped());
        for (String s : g.stops()) {
            if (!s.isEmpty()) {
                assertThat(r.assembler().text()).doesNotContain(s);
            }
        }
    }

    @Property
    void withoutStops_everyTokensText_isSentAtOnce_exceptAnIncompleteCharacter(@ForAll("tokens") int[] ids) {
        TextAssembler a = new TextAssembler(TOKENIZER, new int[0], List.of());
        StringBuilder sent = new StringBuilder();
        for (int k = 1; k <= ids.length; k++) {
            sent.append(a.add(ids[k - 1]));
            String d = decode(Arrays.copyOf(ids, k));
            int end = d.length();
            while (end > 0 && d.charAt(end - 1) == '\uFFFD') {
                end--;
            }
            String settled = d.substring(0, end);
            assertThat(sent.toString()).as("after %d tokens", k).isEqualTo(settled);
        }
        sent.append(a.finish());
        assertThat(sent.toString()).isEqualTo(decode(ids));
    }

    /** Random sequences: any id, or the tokens of words and multi-byte characters (so UTF-8 splits are common). */
    private static int[] randomSequence(java.util.Random random, int pieces) {
        String[] words = {"é", "€", "😀", "日本", "STOP", " stop", "ab", " the", "\n\n", "\uFFFD"};
        int[][] parts = new int[pieces][];
        for (int i = 0; i < pieces; i++) {
            parts[i] = random.nextInt(3) == 0 ? TOKENIZER.encode(words[random.nextInt(words.length)])
                    : new int[] {random.nextInt(TOKENIZER.vocabSize())};
        }
        return concat(parts);
    }

    /**
     * Incremental detokenization gives, after every token, exactly the text a full decode of all the tokens so far
     * gives (the settled part plus the unsettled tail), over many long random sequences.
     */
    @Test
    void incrementalText_isTheFullDecode_afterEveryToken_overRandomSequences() {
        java.util.Random random = new java.util.Random(42);
        for (int seq = 0; seq < 300; seq++) {
            int[] ids = randomSequence(random, 1 + random.nextInt(120));
            TextAssembler a = new TextAssembler(TOKENIZER, new int[0], List.of());
            StringBuilder sent = new StringBuilder();
            for (int k = 1; k <= ids.length; k++) {
                sent.append(a.add(ids[k - 1]));
                assertThat(a.text()).as("sequence %s after %d tokens", Arrays.toString(ids), k)
                        .isEqualTo(decode(Arrays.copyOf(ids, k)));
            }
            sent.append(a.finish());
            assertThat(sent.toString()).isEqualTo(decode(ids));
        }
    }

    /** The ids decoded over a whole generation grow linearly with its length, not quadratically. */
    @Test
    void idsDecoded_growLinearly_withTheGeneration() {
        int n = 5_000;
        int[] ids = randomSequence(new java.util.Random(7), n);
        long[] decoded = {0};
        TextAssembler a = new TextAssembler(window -> {
            decoded[0] += window.length;
            return TOKENIZER.decode(window, true);
        }, id -> TOKENIZER.isSpecial(id) || TOKENIZER.token(id).matches("<0x[0-9A-F]{2}>"),
                TOKENIZER.encode("Once upon a time"), List.of("STOP"));
        StringBuilder sent = new StringBuilder();
        for (int id : ids) {
            sent.append(a.add(id));
        }
        sent.append(a.finish());
        assertThat(decoded[0]).isLessThan(20L * ids.length);
        assertThat(a.text()).isEqualTo(reference(ids, List.of("STOP")).text());
        assertThat(sent.toString()).isEqualTo(a.text());
    }
}
