package io.moemesh.cli.mesh;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --state-dir}: where a mesh keeps mesh.json, the placement file, logs and native-library caches. */
public final class StateDirOption {
    @Option(names = "--state-dir", paramLabel = "DIR",
            description = "Mesh state: mesh.json, placement.json, logs/, tls/, router/, native-cache/ (default "
                    + ".moemesh under the repository root).")
    Path dir;

    public Path resolve() {
        return (dir != null ? dir : MeshHome.detect().defaultStateDir()).toAbsolutePath().normalize();
    }

    public boolean isDefault() {
        return dir == null;
    }
}
