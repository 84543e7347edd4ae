package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Settings {@code up} passes on to the services, and the ones it must not write in clear. The services get the
 * caller's environment (so {@code MOEMESH_GATEWAY_API_KEYS=... moemesh up} turns auth on), and mesh.json records
 * the part of it that configures them, so a restart — by the supervisor or anyone else — gets the same settings.
 * Secrets are never recorded there nor handed on in a process environment (readable in /proc by the same user):
 * inline API keys are written to {@code <state>/secrets/api-keys} (directory 0700, file 0600) and the gateway is
 * given {@code MOEMESH_GATEWAY_API_KEYS_FILE} instead.
 */
final class MeshSecrets {
    /**
     * The gateway's inline keys ({@code MOEMESH_GATEWAY_API_KEYS}) and its key file; both read under every name the
     * gateway binds them from ({@link SpringEnvironment}).
     */
    static final String API_KEYS_PROPERTY = "moemesh.gateway.api-keys";
    static final String API_KEYS_FILE_PROPERTY = "moemesh.gateway.api-keys-file";
    /**
     * Prefixes of the variables that configure a service (Spring relaxed binding, OpenTelemetry), in the form
     * {@link #configuresService} compares them.
     */
    private static final List<String> SETTING_PREFIXES =
            List.of("MOEMESH_", "SERVER_", "MANAGEMENT_", "SPRING_", "LOGGING_", "OTEL_");
    /**
     * Names that hold a secret (a key, token or password) rather than a path to one, in any case: Spring binds
     * {@code moemesh_gateway_api_keys} as it binds {@code MOEMESH_GATEWAY_API_KEYS}.
     */
    private static final Pattern SECRET = Pattern.compile(".*(KEY|KEYS|SECRET|SECRETS|PASSWORD|TOKEN|CREDENTIALS?)",
            Pattern.CASE_INSENSITIVE);
    /** The launcher's own variables, not service settings. */
    private static final List<String> LAUNCHER_ONLY = List.of("MOEMESH_REBUILD", "MOEMESH_JAVA_OPTS");

    private MeshSecrets() {
    }

    /** A variable that must not reach a service's environment nor mesh.json. */
    static boolean withheld(String name) {
        return SECRET.matcher(name).matches();
    }

    /**
     * Whether Spring (or OpenTelemetry) could bind the variable {@code name} as a setting of a service: its name
     * starts with one of {@link #SETTING_PREFIXES}, compared as Spring's relaxed binding reads a variable, whatever
     * the case and with {@code .} or {@code -} for {@code _} ({@code moemesh_gateway_...}, {@code moemesh.gateway...}).
     */
    static boolean configuresService(String name) {
        String relaxed = name.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
        return SETTING_PREFIXES.stream().anyMatch(relaxed::startsWith);
    }

    /**
     * The caller's variables that configure services ({@link #configuresService}), without secrets and the
     * launcher's own variables (names compared in any case): recorded in mesh.json for restarts.
     */
    static Map<String, String> settings(Map<String, String> callerEnv) {
        Map<String, String> out = new LinkedHashMap<>();
        callerEnv.forEach((k, v) -> {
            if (configuresService(k) && !withheld(k) && LAUNCHER_ONLY.stream().noneMatch(k::equalsIgnoreCase)) {
                out.put(k, v);
            }
        });
        return out;
    }

    /** The key clients such as {@code generate --endpoint} send (GenerateCommand reads the same variable). */
    static final String CLIENT_API_KEY_ENV = "MOEMESH_API_KEY";

    /**
     * The API key a command that started the mesh itself ({@code demo}, {@code chaos}) sends to its gateway: the
     * command's {@code --api-key}, else {@code MOEMESH_API_KEY}, else the first key the gateway was given
     * ({@code MOEMESH_GATEWAY_API_KEYS}, then the first line of {@code MOEMESH_GATEWAY_API_KEYS_FILE}, each under any
     * name the gateway binds it from), so that a
     * mesh started with auth on is called with a key it accepts; null when none is set (auth off). A key file that
     * cannot be read gives none: {@code up} reports it.
     */
    static String clientApiKey(String option, Map<String, String> callerEnv) {
        if (option != null && !option.isBlank()) {
            return option.strip();
        }
        String client = callerEnv.get(CLIENT_API_KEY_ENV);
        if (client != null && !client.isBlank()) {
            return client.strip();
        }
        String inline = SpringEnvironment.value(callerEnv, API_KEYS_PROPERTY).orElse(null);
        if (inline != null && !inline.isBlank()) {
            String pair = inline.split(",")[0];
            int colon = pair.lastIndexOf(':');
            return colon <= 0 ? null : pair.substring(0, colon).strip();
        }
        String file = SpringEnvironment.value(callerEnv, API_KEYS_FILE_PROPERTY).orElse(null);
        if (file != null && !file.isBlank()) {
            try {
                return Files.readAllLines(Path.of(file), StandardCharsets.UTF_8).stream().map(String::strip)
                        .filter(l -> !l.isEmpty() && !l.startsWith("#")).map(l -> l.split("\\s+")[0]).findFirst()
                        .orElse(null);
            } catch (IOException | java.nio.file.InvalidPathException e) {
                return null;
            }
        }
        return null;
    }

    /**
     * When the caller set inline API keys (under any name the gateway binds them from: also
     * {@code MOEMESH_GATEWAY_APIKEYS}): writes them (after the lines of the key file the caller named, if any, under
     * any of its names) to {@code <state>/secrets/api-keys} with owner-only permissions and returns that file, which
     * the gateway is then given as {@code moemesh.gateway.api-keys-file}; empty otherwise.
     *
     * @throws IllegalArgumentException when the inline keys are not {@code KEY:TENANT} pairs, hold none, or hold a key
     *                                  that starts with {@code #} (the gateway would refuse them at startup, or read
     *                                  the key's line as a comment; saying so here is sooner: {@code up} exits 2)
     */
    static Optional<Path> gatewayApiKeys(Path stateDir, Map<String, String> callerEnv) {
        Optional<Map.Entry<String, String>> inlineSetting = SpringEnvironment.find(callerEnv, API_KEYS_PROPERTY);
        if (inlineSetting.isEmpty() || inlineSetting.get().getValue().isBlank()) {
            return Optional.empty();
        }
        String inlineName = inlineSetting.get().getKey();
        String inline = inlineSetting.get().getValue();
        List<String> lines = new ArrayList<>();
        lines.add("# written by moemesh up from " + inlineName + "; KEY TENANT per line");
        Optional<Map.Entry<String, String>> fileSetting = SpringEnvironment.find(callerEnv, API_KEYS_FILE_PROPERTY);
        if (fileSetting.isPresent() && !fileSetting.get().getValue().isBlank()) {
            String file = fileSetting.get().getValue();
            try {
                lines.addAll(Files.readAllLines(Path.of(file), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalArgumentException(fileSetting.get().getKey() + "=" + file + " is not readable: "
                        + e.getMessage());
            }
        }
        String[] pairs = inline.split(",");
        if (pairs.length == 0) {
            throw new IllegalArgumentException(inlineName + " holds no KEY:TENANT pair: unset it to run without auth");
        }
        for (String pair : pairs) {
            int colon = pair.lastIndexOf(':');
            String key = colon <= 0 ? "" : pair.substring(0, colon).strip();
            String tenant = colon <= 0 ? "" : pair.substring(colon + 1).strip();
            if (key.isEmpty() || tenant.isEmpty() || key.matches(".*\\s.*") || tenant.matches(".*\\s.*")) {
                throw new IllegalArgumentException(inlineName + " must be KEY:TENANT pairs separated by commas, "
                        + "without spaces inside a key or tenant");
            }
            // The key file has no escaping: a line that starts with # is a comment, so the key would be dropped
            // (and with it, were it the only one, auth itself). Refused, never quoting the key.
            if (key.startsWith("#")) {
                throw new IllegalArgumentException(inlineName + ": a key must not start with # (the gateway's key "
                        + "file reads such a line as a comment)");
            }
            lines.add(key + " " + tenant);
        }
        Path dir = stateDir.resolve("secrets");
        Path keys = dir.resolve("api-keys");
        PrivateDirectories.create(dir);
        try {
            // An existing one (an earlier mesh's) is narrowed too: it is about to hold the keys.
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
            Files.deleteIfExists(keys);
            // Created with owner-only permissions before a byte is written: never readable by others, not even briefly.
            Files.createFile(keys, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.write(keys, lines, StandardCharsets.UTF_8, StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(keys + ": cannot write the API key file", e);
        }
        return Optional.of(keys);
    }
}
