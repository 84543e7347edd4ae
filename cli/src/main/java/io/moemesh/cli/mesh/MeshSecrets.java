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
import java.util.Map;
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
    static final String API_KEYS_ENV = "MOEMESH_GATEWAY_API_KEYS";
    static final String API_KEYS_FILE_ENV = "MOEMESH_GATEWAY_API_KEYS_FILE";
    /** Prefixes of the variables that configure a service (Spring relaxed binding, OpenTelemetry, the JVM). */
    private static final List<String> SETTING_PREFIXES =
            List.of("MOEMESH_", "SERVER_", "MANAGEMENT_", "SPRING_", "LOGGING_", "OTEL_");
    /** Names that hold a secret (a key, token or password) rather than a path to one. */
    private static final Pattern SECRET = Pattern.compile(".*(KEY|KEYS|SECRET|SECRETS|PASSWORD|TOKEN|CREDENTIALS?)");
    /** The launcher's own variables, not service settings. */
    private static final List<String> LAUNCHER_ONLY = List.of("MOEMESH_REBUILD", "MOEMESH_JAVA_OPTS");

    private MeshSecrets() {
    }

    /** A variable that must not reach a service's environment nor mesh.json. */
    static boolean withheld(String name) {
        return SECRET.matcher(name).matches();
    }

    /** The caller's variables that configure services, without secrets: recorded in mesh.json for restarts. */
    static Map<String, String> settings(Map<String, String> callerEnv) {
        Map<String, String> out = new LinkedHashMap<>();
        callerEnv.forEach((k, v) -> {
            if (SETTING_PREFIXES.stream().anyMatch(k::startsWith) && !withheld(k) && !LAUNCHER_ONLY.contains(k)) {
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
     * ({@code MOEMESH_GATEWAY_API_KEYS}, then the first line of {@code MOEMESH_GATEWAY_API_KEYS_FILE}), so that a
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
        String inline = callerEnv.get(API_KEYS_ENV);
        if (inline != null && !inline.isBlank()) {
            String pair = inline.split(",")[0];
            int colon = pair.lastIndexOf(':');
            return colon <= 0 ? null : pair.substring(0, colon).strip();
        }
        String file = callerEnv.get(API_KEYS_FILE_ENV);
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
     * When the caller set inline API keys: writes them (after the lines of the key file the caller named, if any)
     * to {@code <state>/secrets/api-keys} with owner-only permissions and returns the variable that points the
     * gateway at it; empty otherwise.
     *
     * @throws IllegalArgumentException when the inline keys are not {@code KEY:TENANT} pairs (the gateway would
     *                                  refuse them at startup; saying so here is sooner)
     */
    static Map<String, String> gatewayApiKeys(Path stateDir, Map<String, String> callerEnv) {
        String inline = callerEnv.get(API_KEYS_ENV);
        if (inline == null || inline.isBlank()) {
            return Map.of();
        }
        List<String> lines = new ArrayList<>();
        lines.add("# written by moemesh up from " + API_KEYS_ENV + "; KEY TENANT per line");
        String file = callerEnv.get(API_KEYS_FILE_ENV);
        if (file != null && !file.isBlank()) {
            try {
                lines.addAll(Files.readAllLines(Path.of(file), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new IllegalArgumentException(API_KEYS_FILE_ENV + "=" + file + " is not readable: " + e.getMessage());
            }
        }
        for (String pair : inline.split(",")) {
            int colon = pair.lastIndexOf(':');
            String key = colon <= 0 ? "" : pair.substring(0, colon).strip();
            String tenant = colon <= 0 ? "" : pair.substring(colon + 1).strip();
            if (key.isEmpty() || tenant.isEmpty() || key.matches(".*\\s.*") || tenant.matches(".*\\s.*")) {
                throw new IllegalArgumentException(API_KEYS_ENV + " must be KEY:TENANT pairs separated by commas, "
                        + "without spaces inside a key or tenant");
            }
            lines.add(key + " " + tenant);
        }
        Path dir = stateDir.resolve("secrets");
        Path keys = dir.resolve("api-keys");
        try {
            Files.createDirectories(dir);
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
            Files.deleteIfExists(keys);
            // Created with owner-only permissions before a byte is written: never readable by others, not even briefly.
            Files.createFile(keys, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.write(keys, lines, StandardCharsets.UTF_8, StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(keys + ": cannot write the API key file", e);
        }
        return Map.of(API_KEYS_FILE_ENV, keys.toString());
    }
}
