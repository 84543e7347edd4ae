package io.moemesh.cli.mesh;

import java.util.Map;
import picocli.CommandLine.Option;

/**
 * {@code --api-key} of the commands that start a mesh and then call its gateway ({@code demo}, {@code chaos}). The
 * mesh's gateway turns auth on from the caller's {@code MOEMESH_GATEWAY_API_KEYS} (or {@code _FILE}), as {@code up}'s
 * does, and then refuses a call without a key: the command must send one, found as {@link MeshSecrets#clientApiKey}
 * says.
 */
public final class ApiKeyOption {
    @Option(names = "--api-key", paramLabel = "KEY",
            description = "The key the command's calls to the gateway send when auth is on (default: environment "
                    + "MOEMESH_API_KEY, else the first key of MOEMESH_GATEWAY_API_KEYS or MOEMESH_GATEWAY_API_KEYS_FILE, "
                    + "which turn the mesh's auth on). Never logged.")
    String apiKey;

    /** The key to send, from the option or the process environment; null when there is none (auth off). */
    public String resolve() {
        return resolve(System.getenv());
    }

    String resolve(Map<String, String> env) {
        return MeshSecrets.clientApiKey(apiKey, env);
    }
}
