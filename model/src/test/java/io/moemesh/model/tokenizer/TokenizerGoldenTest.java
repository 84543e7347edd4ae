package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Every {@code cases[]} entry of every golden.json: ids, token strings and both decodes match HF exactly. */
class TokenizerGoldenTest {
    private static final Map<String, Tokenizer> TOKENIZERS = new HashMap<>();

    static List<GoldenData.Case> cases() {
        return GoldenData.cases();
    }

    static Tokenizer tokenizer(String style) {
        synchronized (TOKENIZERS) {
            return TOKENIZERS.computeIfAbsent(style,
                    s -> Tokenizer.load(GoldenData.file(s, "tokenizer.json")));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void encode_matchesReferenceIds_forEveryGoldenCase(GoldenData.Case c) {
        assertThat(tokenizer(c.style()).encode(c.text())).containsExactly(c.ids());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void encode_matchesReferenceTokenStrings_forEveryGoldenCase(GoldenData.Case c) {
        Tokenizer t = tokenizer(c.style());
        assertThat(t.tokens(t.encode(c.text()))).containsExactlyElementsOf(c.tokens());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void decode_skippingSpecialTokens_matchesReference_forEveryGoldenCase(GoldenData.Case c) {
        assertThat(tokenizer(c.style()).decode(c.ids(), true)).isEqualTo(c.decode());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void decode_keepingSpecialTokens_matchesReference_forEveryGoldenCase(GoldenData.Case c) {
        assertThat(tokenizer(c.style()).decode(c.ids(), false)).isEqualTo(c.decodeKeepSpecial());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void tokenIdAndToken_areInverse_forEveryReferenceToken(GoldenData.Case c) {
        Tokenizer t = tokenizer(c.style());
        for (int i = 0; i < c.ids().length; i++) {
            assertThat(t.token(c.ids()[i])).isEqualTo(c.tokens().get(i));
            assertThat(t.tokenId(c.tokens().get(i))).hasValue(c.ids()[i]);
        }
    }
}
