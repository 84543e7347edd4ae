package io.moemesh.cli.mesh;

import java.nio.file.Path;

/** Writes a mesh.json for tests of commands that read one (the file {@code up} writes). */
public final class MeshStates {
    private MeshStates() {
    }

    public static void write(Path stateDir, MeshState state) {
        state.write(stateDir);
    }
}
