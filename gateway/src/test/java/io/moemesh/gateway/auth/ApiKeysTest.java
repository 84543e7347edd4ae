package io.moemesh.gateway.auth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.settings.SettingRefusedException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.NullSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * API keys as plain objects: a key file of {@code KEY TENANT} lines and/or an inline {@code KEY:TENANT,...}
 * string; a presented key maps to its tenant only when it is exactly a configured key (compared as SHA-256
 * digests); malformed sources fail at load with the line or pair named and the key never quoted.
 */
class ApiKeysTest {
    private static final String ALICE_KEY = "sk-alice-0123456789";
    private static final String BOB_KEY = "sk-bob-9876543210";

    @TempDir
    Path dir;

    private Path keyFile(String... lines) throws IOException {
        return Files.write(dir.resolve("api-keys"), java.util.List.of(lines));
    }

    @Test
    void keyFile_mapsEachKeyToItsTenant_skippingCommentsAndBlankLines() throws IOException {
        ApiKeys keys = ApiKeys.load(keyFile(
                "# production keys",
                "",
                "   ",
                ALICE_KEY + " alice",
                "  # indented comment",
                "\t" + BOB_KEY + "   \t bob  "), null);
        assertThat(keys.enabled()).isTrue();
        assertThat(keys.tenantOf(ALICE_KEY)).contains("alice");
        assertThat(keys.tenantOf(BOB_KEY)).contains("bob");
        assertThat(keys.tenantOf("# production keys")).isEmpty();
    }

    @Test
    void inlineKeys_mapEachKeyToItsTenant_spacesAroundPairsAllowed() {
        ApiKeys keys = ApiKeys.load(null, ALICE_KEY + ":alice, " + BOB_KEY + " : bob ,");
        assertThat(keys.tenantOf(ALICE_KEY)).contains("alice");
        assertThat(keys.tenantOf(BOB_KEY)).contains("bob");
    }

    @Test
    void inlineKey_mayContainColons_theLastOneSeparatesTheTenant() {
        ApiKeys keys = ApiKeys.load(null, "sk:with:colons:tenant-a");
        assertThat(keys.tenantOf("sk:with:colons")).contains("tenant-a");
        assertThat(keys.tenantOf("sk")).isEmpty();
    }

    @Test
    void fileAndInlineKeys_areBothAccepted() throws IOException {
        ApiKeys keys = ApiKeys.load(keyFile(ALICE_KEY + " alice"), BOB_KEY + ":bob");
        assertThat(keys.tenantOf(ALICE_KEY)).contains("alice");
        assertThat(keys.tenantOf(BOB_KEY)).contains("bob");
    }

    @Test
    void twoKeysOfOneTenant_bothMapToIt() throws IOException {
        ApiKeys keys = ApiKeys.load(keyFile("key-one shared", "key-two shared"), "key-three:shared");
        assertThat(keys.tenantOf("key-one")).contains("shared");
        assertThat(keys.tenantOf("key-two")).contains("shared");
        assertThat(keys.tenantOf("key-three")).contains("shared");
    }

    @Test
    void oneKeyOfTwoTenants_isRefused_namingTheTenantsNotTheKey() throws IOException {
        Path file = keyFile(ALICE_KEY + " alice");
        assertThatThrownBy(() -> ApiKeys.load(file, ALICE_KEY + ":mallory"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("an API key is listed for two tenants, alice and mallory: give each key one tenant");
    }

    @Test
    void oneKeyListedTwiceForOneTenant_isAccepted() throws IOException {
        ApiKeys keys = ApiKeys.load(keyFile(ALICE_KEY + " alice"), ALICE_KEY + ":alice");
        assertThat(keys.tenantOf(ALICE_KEY)).contains("alice");
    }

    @ParameterizedTest(name = "\"{0}\"")
    @ValueSource(strings = {
            "sk-alice-0123456780", // a wrong key of the same length
            "sk-alice-012345678", // a prefix of a real key
            "sk-alice-01234567890", // a real key with one more character
            "SK-ALICE-0123456789", // keys are case-sensitive
            " sk-alice-0123456789", // not stripped here: bearer() strips the header value
            "alice", // the tenant is not a key
            ""})
    void presentedKey_thatIsNotExactlyAConfiguredKey_matchesNoTenant(String presented) {
        ApiKeys keys = ApiKeys.load(null, ALICE_KEY + ":alice");
        assertThat(keys.tenantOf(presented)).isEmpty();
    }

    @ParameterizedTest
    @NullSource
    void noKeyPresented_matchesNoTenant(String presented) {
        assertThat(ApiKeys.load(null, ALICE_KEY + ":alice").tenantOf(presented)).isEqualTo(Optional.empty());
    }

    @Test
    void none_isDisabled_andMatchesNothing() {
        ApiKeys keys = ApiKeys.none();
        assertThat(keys.enabled()).isFalse();
        assertThat(keys.tenantOf(ALICE_KEY)).isEmpty();
        assertThat(keys.tenantOf("")).isEmpty();
    }

    @ParameterizedTest(name = "inline \"{0}\"")
    @NullSource
    @ValueSource(strings = {"", "  "})
    void noSources_orBlankInline_meansAuthOff(String inline) {
        assertThat(ApiKeys.load(null, inline).enabled()).isFalse();
    }

    /**
     * An operator who comments out every key to revoke access must not get every request served as tenant default:
     * a key file that is set and holds no key stops the gateway, naming the property and the file.
     */
    @ParameterizedTest(name = "inline \"{0}\"")
    @NullSource
    @ValueSource(strings = {"", "  ", "sk-other:carol"})
    void keyFileWithNoKeys_isRefused_namingThePropertyAndTheFile(String inline) throws IOException {
        Path file = keyFile("# every key revoked", "# " + ALICE_KEY + " alice", "");
        assertThatThrownBy(() -> ApiKeys.load(file, inline))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.api-keys-file"))
                .hasMessage("moemesh.gateway.api-keys-file " + file + " holds no keys (only comments or blank lines): "
                        + "remove the setting to run without auth, or add a \"KEY TENANT\" line")
                .message().doesNotContain(ALICE_KEY);
        Path empty = keyFile();
        assertThatThrownBy(() -> ApiKeys.load(empty, inline)).hasMessageStartingWith(
                "moemesh.gateway.api-keys-file " + empty + " holds no keys");
    }

    @ParameterizedTest(name = "inline \"{0}\"")
    @ValueSource(strings = {",", ",,,"})
    void inlineSettingWithNoPair_isRefused_namingTheProperty(String inline) {
        assertThatThrownBy(() -> ApiKeys.load(null, inline))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.api-keys"))
                .hasMessage("moemesh.gateway.api-keys holds no KEY:TENANT pair: remove the setting to run without auth");
    }

    /** moemesh up writes inline keys to a key file, where a line starting with # is a comment: refused where given. */
    @ParameterizedTest(name = "\"{0}\" → pair {1}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', textBlock = """
            "#secret:alice"               | 1
            "good:alice, #secret:bob"     | 2
            """)
    void inlineKeyStartingWithHash_isRefused_withoutQuotingIt(String inline, int pair) {
        assertThatThrownBy(() -> ApiKeys.load(null, inline)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.api-keys: a key must not start with # (a key file reads such a line as a "
                        + "comment; pair " + pair + " does)")
                .message().doesNotContain("secret");
        assertThat(ApiKeys.load(null, "sk#inside:alice").tenantOf("sk#inside")).as("# inside a key").contains("alice");
    }

    @ParameterizedTest(name = "line {1}: \"{0}\"")
    @CsvSource(delimiter = '|', textBlock = """
            secret-key-only              | 2
            secret-key tenant extra      | 2
            secret-key tenant # comment  | 2
            """)
    void malformedKeyFileLine_failsNamingTheFileAndLineNumber_withoutQuotingTheKey(String badLine, int lineNumber)
            throws IOException {
        Path file = keyFile("# keys", badLine, ALICE_KEY + " alice");
        assertThatThrownBy(() -> ApiKeys.load(file, null))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.api-keys-file"))
                .hasMessage("API key file " + file + " line " + lineNumber + ": expected \"KEY TENANT\"")
                .message().doesNotContain("secret-key");
    }

    @Test
    void malformedLine_isNamedByItsLineInTheFile_countingCommentsAndBlankLines() throws IOException {
        Path file = keyFile("# keys", "", ALICE_KEY + " alice", "", "# bob:", "lonely-key");
        assertThatThrownBy(() -> ApiKeys.load(file, null)).hasMessageContaining(" line 6: ");
    }

    @Test
    void missingKeyFile_failsNamingTheFile() {
        Path missing = dir.resolve("no-such-file");
        assertThatThrownBy(() -> ApiKeys.load(missing, null)).isInstanceOf(UncheckedIOException.class)
                .hasMessage("API key file " + missing + " is not readable");
    }

    @ParameterizedTest(name = "\"{0}\" → pair {1}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', textBlock = """
            "secret-no-colon"                  | 1
            "good:alice,secret-no-colon"       | 2
            ":tenant"                          | 1
            "  :tenant"                        | 1
            "secret-key:"                      | 1
            "secret-key:   "                   | 1
            "good:alice,,other:bob"            | 2
            "secret key:tenant"                | 1
            "secret-key:two words"             | 1
            """)
    void malformedInlinePair_failsNamingThePairsPosition_withoutQuotingTheKey(String inline, int pair) {
        assertThatThrownBy(() -> ApiKeys.load(null, inline)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("API keys must be KEY:TENANT pairs separated by commas, without spaces inside a key or "
                        + "tenant (pair " + pair + " is not)")
                .message().doesNotContain("secret");
    }

    @ParameterizedTest(name = "\"{0}\" → {1}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', nullValues = "NULL", textBlock = """
            "Bearer sk-1"          | sk-1
            "bearer sk-1"          | sk-1
            "BEARER sk-1"          | sk-1
            "BeArEr sk-1"          | sk-1
            "Bearer    sk-1   "    | sk-1
            "Bearer "              | ""
            "Bearer"               | NULL
            "Bearersk-1"           | NULL
            "Basic dXNlcjpwYXNz"   | NULL
            "sk-1"                 | NULL
            ""                     | NULL
            " Bearer sk-1"         | NULL
            """)
    void bearer_takesTheKeyAfterTheCaseInsensitiveScheme(String header, String expected) {
        assertThat(ApiKeys.bearer(header)).isEqualTo(expected);
    }

    @Test
    void bearer_ofAMissingHeader_isNull() {
        assertThat(ApiKeys.bearer(null)).isNull();
    }

    @Test
    void emptyBearerKey_neverAuthenticates() {
        ApiKeys keys = ApiKeys.load(null, ALICE_KEY + ":alice");
        assertThat(keys.tenantOf(ApiKeys.bearer("Bearer "))).isEmpty();
        assertThat(keys.tenantOf(ApiKeys.bearer("Bearer " + ALICE_KEY))).contains("alice");
    }
}
