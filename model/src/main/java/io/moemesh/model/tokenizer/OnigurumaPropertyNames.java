package io.moemesh.model.tokenizer;

import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/** The {@code \p{...}} names {@link OnigurumaRegex} accepts, spelled as it looks them up. */
final class OnigurumaPropertyNames {
    /** Names Java reads as Oniguruma does (general categories but Cn and Cs, POSIX classes). */
    static final Set<String> SAME = Set.of("L", "Lu", "Ll", "Lt", "Lm", "Lo", "LC", "M", "Mn",
            "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk",
            "So", "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Co", "Alpha", "Alnum", "ASCII", "Blank", "Cntrl",
            "Digit", "Graph", "Lower", "Print", "Punct", "Space", "Upper");
    /** Binary properties Java reads as Oniguruma does, with Java's "Is" prefix. */
    static final Set<String> BINARY = Set.of("White_Space", "Alphabetic", "Emoji",
            "Emoji_Presentation", "Emoji_Modifier", "Emoji_Modifier_Base", "Emoji_Component", "Extended_Pictographic",
            "Ideographic", "Lowercase", "Uppercase", "Join_Control", "Noncharacter_Code_Point");
    /** The general categories' long names (Unicode's PropertyValueAliases), by their short ones. */
    private static final Map<String, String> LONG_CATEGORY_NAMES = Map.ofEntries(Map.entry("Letter", "L"),
            Map.entry("Cased_Letter", "LC"), Map.entry("Uppercase_Letter", "Lu"), Map.entry("Lowercase_Letter", "Ll"),
            Map.entry("Titlecase_Letter", "Lt"), Map.entry("Modifier_Letter", "Lm"), Map.entry("Other_Letter", "Lo"),
            Map.entry("Mark", "M"), Map.entry("Nonspacing_Mark", "Mn"), Map.entry("Spacing_Mark", "Mc"),
            Map.entry("Enclosing_Mark", "Me"), Map.entry("Number", "N"), Map.entry("Decimal_Number", "Nd"),
            Map.entry("Letter_Number", "Nl"), Map.entry("Other_Number", "No"), Map.entry("Punctuation", "P"),
            Map.entry("Connector_Punctuation", "Pc"), Map.entry("Dash_Punctuation", "Pd"),
            Map.entry("Open_Punctuation", "Ps"), Map.entry("Close_Punctuation", "Pe"),
            Map.entry("Initial_Punctuation", "Pi"), Map.entry("Final_Punctuation", "Pf"),
            Map.entry("Other_Punctuation", "Po"), Map.entry("Symbol", "S"), Map.entry("Math_Symbol", "Sm"),
            Map.entry("Currency_Symbol", "Sc"), Map.entry("Modifier_Symbol", "Sk"), Map.entry("Other_Symbol", "So"),
            Map.entry("Separator", "Z"), Map.entry("Space_Separator", "Zs"), Map.entry("Line_Separator", "Zl"),
            Map.entry("Paragraph_Separator", "Zp"), Map.entry("Other", "C"), Map.entry("Control", "Cc"),
            Map.entry("Format", "Cf"), Map.entry("Private_Use", "Co"));
    /** Every accepted name but the scripts, lower-cased, to the spelling the lookups above use. */
    private static final Map<String, String> KNOWN_NAMES = knownNames();

    private OnigurumaPropertyNames() {
    }

    /**
     * The spelling OnigurumaRegex looks up for a property name: Oniguruma ignores the case of property names
     * ({@code \p{l}}, {@code \p{WHITE_SPACE}}), and a long general-category name ({@code \p{Letter}}) means its
     * short one.
     */
    static String canonical(String name) {
        String folded = name.toLowerCase(Locale.ROOT);
        String known = KNOWN_NAMES.get(folded);
        return known != null ? known : name;
    }

    /**
     * A script by its Unicode name or alias (Hani, Zinh), in any case, as Oniguruma reads them; but Unknown (Zzzz):
     * Oniguruma's set of it differs. Java's forName takes the same names and aliases, ignoring case.
     */
    static Character.UnicodeScript script(String name) {
        try {
            Character.UnicodeScript script = Character.UnicodeScript.forName(name);
            return script == Character.UnicodeScript.UNKNOWN ? null : script;
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static Map<String, String> knownNames() {
        Map<String, String> out = new HashMap<>();
        for (Set<String> names : List.of(SAME, BINARY, Set.of("Word", "XDigit", "Hex_Digit", "Assigned", "Any"))) {
            names.forEach(n -> out.put(n.toLowerCase(Locale.ROOT), n));
        }
        LONG_CATEGORY_NAMES.forEach((longName, shortName) -> out.put(longName.toLowerCase(Locale.ROOT), shortName));
        return Map.copyOf(out);
    }
}
