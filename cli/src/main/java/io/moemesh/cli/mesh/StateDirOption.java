package io.moemesh.cli.mesh;

import java.nio.file.Path;
import java.util.regex.Pattern;
import picocli.CommandLine.Option;

/** {@code --state-dir}: where a mesh keeps mesh.json, the placement file, logs and native-library caches. */
public final class StateDirOption {
    /** Characters a POSIX shell takes literally in a word (XCU 2.2: none of them is special, quoting or not). */
    private static final Pattern SHELL_LITERAL = Pattern.compile("[A-Za-z0-9_./,:+=@%-]+");

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

    /**
     * {@code --state-dir DIR} as a hint's command line can show it ({@code stop it with: moemesh down ...}): a path
     * with a space, {@code #}, {@code $} or another character a shell would split or expand is single-quoted (a
     * {@code '} in it as {@code '\''}), so the line can be pasted as it is.
     */
    static String argument(Path dir) {
        String s = dir.toString();
        return "--state-dir " + (SHELL_LITERAL.matcher(s).matches() ? s : "'" + s.replace("'", "'\\''") + "'");
    }
}
