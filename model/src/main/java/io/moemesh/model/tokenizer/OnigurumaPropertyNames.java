package io.moemesh.model.tokenizer;

import java.util.HashMap;
import java.util.List;
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
    /** Every accepted name but the scripts, by its {@link #key}, to the spelling the lookups above use. */
    private static final Map<String, String> KNOWN_NAMES = knownNames();
    /** The scripts by the {@link #key} of their Unicode names (OLD_ITALIC: "olditalic"). */
    private static final Map<String, Character.UnicodeScript> SCRIPTS = scripts();

    private OnigurumaPropertyNames() {
    }

    /**
     * The spelling OnigurumaRegex looks up for a property name, or the name as written if it is none of the names
     * above: Oniguruma matches a name as {@link #key} spells it ({@code \p{l}}, {@code \p{WHITE SPACE}},
     * {@code \p{L_u}}), and a long general-category name ({@code \p{Letter}}) means its short one.
     */
    static String canonical(String name) {
        String key = key(name);
        String known = key == null ? null : KNOWN_NAMES.get(key);
        return known != null ? known : name;
    }

    /**
     * A script by its Unicode name or alias (Hani, Zinh, {@code Old Italic}), spelled as {@link #key} allows, as
     * Oniguruma reads them; but Unknown (Zzzz): Oniguruma's set of it differs.
     */
    static Character.UnicodeScript script(String name) {
        String key = key(name);
        if (key == null) {
            return null;
        }
        Character.UnicodeScript script = SCRIPTS.get(key);
        if (script == null) {
            // The 4-letter aliases (Hani, Zinh): Java's forName knows them, ignoring case; the key is ASCII without
            // separators, so forName can only take an alias here or a name the map already has.
            try {
                script = Character.UnicodeScript.forName(key);
            } catch (IllegalArgumentException e) {
                return null;
            }
        }
        return script == Character.UnicodeScript.UNKNOWN ? null : script;
    }

    /**
     * A property name as Oniguruma looks it up (onigenc_unicode_property_name_to_ctype, src/unicode.c; its name
     * table is gperf's with --ignore-case, src/unicode_property_data.c): spaces, hyphens and underscores dropped
     * wherever they are, and ASCII letters lower-cased; null for a name with a character outside ASCII, which
     * Oniguruma refuses (ONIGERR_INVALID_CHAR_PROPERTY_NAME) and Java's case mapping could turn into a known one
     * (the Kelvin sign into k, dotless i into I). Other characters (a tab) stay, so no name has them.
     */
    static String key(String name) {
        StringBuilder out = new StringBuilder(name.length());
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c >= 0x80) {
                return null;
            }
            if (c != ' ' && c != '-' && c != '_') {
                out.append(c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c);
            }
        }
        return out.toString();
    }

    private static Map<String, String> knownNames() {
        Map<String, String> out = new HashMap<>();
        for (Set<String> names : List.of(SAME, BINARY, Set.of("Word", "XDigit", "Hex_Digit", "Assigned", "Any"))) {
            names.forEach(n -> out.put(key(n), n));
        }
        LONG_CATEGORY_NAMES.forEach((longName, shortName) -> out.put(key(longName), shortName));
        return Map.copyOf(out);
    }

    private static Map<String, Character.UnicodeScript> scripts() {
        Map<String, Character.UnicodeScript> out = new HashMap<>();
        for (Character.UnicodeScript script : Character.UnicodeScript.values()) {
            out.put(key(script.name()), script);
        }
        return Map.copyOf(out);
    }
}
