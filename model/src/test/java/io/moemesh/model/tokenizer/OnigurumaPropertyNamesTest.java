package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link OnigurumaPropertyNames}: a {@code \p{...}} name is looked up as Oniguruma looks it up
 * (onigenc_unicode_property_name_to_ctype, src/unicode.c): spaces, hyphens and underscores dropped, ASCII case
 * ignored, any character outside ASCII refused.
 */
class OnigurumaPropertyNamesTest {
    private static String javaSource(String regex) {
        return HfRegex.compile(regex, "pre_tokenizer.pattern").pattern();
    }

    @ParameterizedTest(name = "\\p'{'{0}'}' is \\p'{'{1}'}'")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "lu | Lu",
        "LU | Lu",
        "L_u | Lu",
        "l-u | Lu",
        "` L u ` | Lu",
        "Upper case letter | Lu",
        "uppercase-letter | Lu",
        "UPPERCASELETTER | Lu",
        "_Letter_ | L",
        "cased letter | LC",
        "Decimal-Number | Nd",
        "private use | Co",
        "p u n c t | Punct",
        "a-l-p-h-a | Alpha",
        "White Space | White_Space",
        "whitespace | White_Space",
        "WHITE-SPACE | White_Space",
        "Extended Pictographic | Extended_Pictographic",
        "Noncharacter-Code-Point | Noncharacter_Code_Point",
        "hex-digit | Hex_Digit",
        "x_digit | XDigit",
        "as signed | Assigned",
        "W o r d | Word",
        "ANY | Any",
        "H_a_n_i | Han",
        "Old Italic | Old_Italic",
        "olditalic | Old_Italic",
        "OLD-ITALIC | Ital",
        "phags pa | Phags_Pa",
        "z-inh | Inherited"})
    void propertyName_isLookedUpIgnoringCaseSpacesHyphensAndUnderscores(String spelling, String name) {
        assertThat(javaSource("\\p{" + spelling + "}")).isEqualTo(javaSource("\\p{" + name + "}"));
        assertThat(javaSource("[x\\P{" + spelling + "}]")).isEqualTo(javaSource("[x\\P{" + name + "}]"));
        assertThat(javaSource("\\p{^" + spelling + "}")).isEqualTo(javaSource("\\p{^" + name + "}"));
    }

    @Test
    void spacedCategoryName_matchesTheCategory() {
        Matcher m = HfRegex.compile("\\p{Upper case letter}+", "pre_tokenizer.pattern").matcher("abC\u00C9d");
        assertThat(m.find()).isTrue();
        assertThat(m.group()).isEqualTo("C\u00C9");
    }

    /**
     * Oniguruma drops only space, hyphen and underscore, and refuses a name with a character outside ASCII, also
     * where Java's case mapping would make a known name of it (dotless i upper-cases to I, the Kelvin sign
     * lower-cases to k); the names not checked against tokenizers stay refused however spelled.
     */
    @ParameterizedTest(name = "\\p'{'{0}'}'")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "`L\tu`",
        "L.u",
        "Lat\u0131n",
        "\u212Aatakana",
        "\u00A0Lu",
        "_",
        "Zz zz",
        "un-known",
        "In Basic Latin",
        "c n"})
    void unknownPropertyName_isRefusedAtLoad_namingIt(String spelling) {
        String regex = "a\\p{" + spelling + "}";
        assertThatThrownBy(() -> HfRegex.compile(regex, "pre_tokenizer.pattern"))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith("pre_tokenizer.pattern: regex \"" + regex + "\" is not supported: it uses \\p{"
                        + spelling + "} (not one of the properties checked against tokenizers");
    }
}
