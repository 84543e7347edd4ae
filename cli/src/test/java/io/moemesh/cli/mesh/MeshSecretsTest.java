package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class MeshSecretsTest {
    @TempDir
    Path state;

    @ParameterizedTest(name = "{0} withheld: {1}")
    @CsvSource({"MOEMESH_GATEWAY_API_KEYS, true", "MOEMESH_API_KEY, true", "AWS_SECRET_ACCESS_KEY, true",
        "DB_PASSWORD, true", "GITHUB_TOKEN, true", "MOEMESH_GATEWAY_API_KEYS_FILE, false", "PATH, false",
        "MOEMESH_GATEWAY_STEP_TOKEN_BUDGET, false", "moemesh_gateway_api_keys, true", "moemesh_gateway_apikeys, true",
        "Db_Password, true", "moemesh_gateway_api_keys_file, false"})
    void withheld_namesThatHoldSecrets_notPathsToThem(String name, boolean withheld) {
        assertThat(MeshSecrets.withheld(name)).isEqualTo(withheld);
    }

    @Test
    void settings_keepServiceConfiguration_dropSecretsAndLauncherVariables() {
        Map<String, String> s = MeshSecrets.settings(Map.of("MOEMESH_GATEWAY_STEP_TOKEN_BUDGET", "64",
                "MANAGEMENT_OPENTELEMETRY_TRACING_EXPORT_OTLP_ENDPOINT", "http://c:4318", "MOEMESH_GATEWAY_API_KEYS",
                "k:t", "MOEMESH_REBUILD", "1", "HOME", "/root", "SPRING_PROFILES_ACTIVE", "x"));
        assertThat(s).containsOnlyKeys("MOEMESH_GATEWAY_STEP_TOKEN_BUDGET",
                "MANAGEMENT_OPENTELEMETRY_TRACING_EXPORT_OTLP_ENDPOINT", "SPRING_PROFILES_ACTIVE");
    }

    /**
     * Spring binds a lower-case name as it binds the upper-case one: a caller's lower-case settings are passed on
     * (else {@code up}'s default replica picker would replace the caller's), and its lower-case API keys are not (they
     * go to the 0600 key file only).
     */
    @Test
    void settings_lowerCaseNamesAsSpringBindsThem_passedOnWithoutSecrets() {
        Map<String, String> s = MeshSecrets.settings(Map.of("moemesh_gateway_dispatch_replica_picker", "prefer-visited",
                "moemesh_gateway_api_keys", "sk-a:alpha", "Otel_Service_Name", "mesh", "moemesh_rebuild", "1",
                "path", "/bin"));
        assertThat(s).containsOnlyKeys("moemesh_gateway_dispatch_replica_picker", "Otel_Service_Name");
        Map<String, String> gateway = new HashMap<>(s);
        SharedHostSettings.gateway(gateway);
        assertThat(gateway).containsEntry("moemesh_gateway_dispatch_replica_picker", "prefer-visited")
                .doesNotContainKey("MOEMESH_GATEWAY_DISPATCH_REPLICA_PICKER");
    }

    @Test
    void gatewayApiKeys_lowerCaseName_writtenToTheKeyFile() throws Exception {
        Path file = MeshSecrets.gatewayApiKeys(state, Map.of("moemesh_gateway_api_keys", "sk-a:alpha")).orElseThrow();
        assertThat(Files.readAllLines(file)).contains("sk-a alpha");
    }

    @Test
    void gatewayApiKeys_writtenOwnerOnly_asKeyTenantLines_afterTheCallersKeyFile() throws Exception {
        Path own = state.resolve("own-keys");
        Files.writeString(own, "k0 t0\n");
        Path file = MeshSecrets.gatewayApiKeys(state, Map.of("MOEMESH_GATEWAY_API_KEYS",
                "sk-a:alpha, sk-b:beta", "MOEMESH_GATEWAY_API_KEYS_FILE", own.toString())).orElseThrow();
        assertThat(file).isEqualTo(state.resolve("secrets/api-keys"));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file))).isEqualTo("rw-------");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file.getParent()))).isEqualTo("rwx------");
        assertThat(Files.readAllLines(file)).contains("k0 t0", "sk-a alpha", "sk-b beta");
    }

    /**
     * The gateway binds its keys from MOEMESH_GATEWAY_APIKEYS (and its file from MOEMESH_GATEWAY_APIKEYSFILE) too;
     * such keys are withheld from its environment like the others, so they must reach it through the file, or auth
     * would be off.
     */
    @Test
    void gatewayApiKeys_underAnyNameTheGatewayBinds_areWrittenAfterTheCallersKeyFile() throws Exception {
        Path own = state.resolve("own-keys");
        Files.writeString(own, "k0 t0\n");
        Path file = MeshSecrets.gatewayApiKeys(state, Map.of("MOEMESH_GATEWAY_APIKEYS", "sk-a:alpha",
                "MOEMESH_GATEWAY_APIKEYSFILE", own.toString())).orElseThrow();
        assertThat(Files.readAllLines(file)).contains("k0 t0", "sk-a alpha");
        assertThat(MeshSecrets.clientApiKey(null, Map.of("MOEMESH_GATEWAY_APIKEYS", "sk-a:alpha"))).isEqualTo("sk-a");
    }

    /** demo and chaos call the gateway of the mesh they started: with the key that mesh's auth accepts. */
    @ParameterizedTest(name = "--api-key {0}, {1} -> {2}")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "-        | -                                                  | -",
        "sk-opt   | MOEMESH_API_KEY=sk-env                             | sk-opt",
        "-        | MOEMESH_API_KEY=sk-env                             | sk-env",
        "-        | MOEMESH_API_KEY=sk-env;MOEMESH_GATEWAY_API_KEYS=sk-a:alpha | sk-env",
        "-        | MOEMESH_GATEWAY_API_KEYS=sk-a:alpha, sk-b:beta     | sk-a",
        "-        | MOEMESH_GATEWAY_API_KEYS_FILE=FILE                 | k0",
        "-        | MOEMESH_GATEWAY_API_KEYS_FILE=/nonexistent/keys    | -",
    })
    void clientApiKey_optionThenMoemeshApiKeyThenTheFirstKeyTheGatewayWasGiven(String option, String env,
                                                                             String expected) throws Exception {
        Path file = state.resolve("own-keys");
        Files.writeString(file, "# KEY TENANT\n\nk0 t0\nk1 t1\n");
        Map<String, String> callerEnv = new HashMap<>();
        if (env != null) {
            for (String pair : env.split(";")) {
                String[] kv = pair.split("=", 2);
                callerEnv.put(kv[0], kv[1].equals("FILE") ? file.toString() : kv[1]);
            }
        }
        assertThat(MeshSecrets.clientApiKey(option, callerEnv)).isEqualTo(expected);
    }

    @Test
    void gatewayApiKeys_noneSet_noFile() {
        assertThat(MeshSecrets.gatewayApiKeys(state, Map.of())).isEmpty();
        assertThat(state.resolve("secrets")).doesNotExist();
    }

    @Test
    void gatewayApiKeys_malformed_refusedWithoutEchoingTheKeys() {
        assertThatThrownBy(() -> MeshSecrets.gatewayApiKeys(state, Map.of("MOEMESH_GATEWAY_API_KEYS", "sk-secret-only")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("KEY:TENANT")
                .hasMessageNotContaining("sk-secret-only");
    }

    /**
     * The key file has no escaping and reads a line starting with # as a comment: MOEMESH_GATEWAY_API_KEYS='#k:alice'
     * would have become the comment "#k alice" and, as the only key, auth off. Refused (up exits 2), the key not echoed,
     * no file written.
     */
    @ParameterizedTest(name = "\"{0}\"")
    @CsvSource(delimiter = '|', quoteCharacter = '"', textBlock = """
            "#sk-secret:alice"
            "sk-good:bob,#sk-secret:alice"
            " #sk-secret :alice"
            """)
    void gatewayApiKeys_aKeyStartingWithHash_refusedWithoutEchoingIt(String inline) {
        assertThatThrownBy(() -> MeshSecrets.gatewayApiKeys(state, Map.of("MOEMESH_GATEWAY_API_KEYS", inline)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("MOEMESH_GATEWAY_API_KEYS: a key must not start with # (the gateway's key file reads such a "
                        + "line as a comment)");
        assertThat(state.resolve("secrets/api-keys")).doesNotExist();
    }

    @Test
    void gatewayApiKeys_noPairAtAll_refused() {
        assertThatThrownBy(() -> MeshSecrets.gatewayApiKeys(state, Map.of("MOEMESH_GATEWAY_API_KEYS", ",")))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("MOEMESH_GATEWAY_API_KEYS holds no KEY:TENANT pair: unset it to run without auth");
    }
}
