package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

/**
 * A repository root whose service jars are {@link FakeServiceMain} on this test's class path, so the launcher
 * starts real, detached JVMs without the real services being built.
 */
public final class FakeHome {
    private FakeHome() {
    }

    public static MeshHome create(Path root) throws IOException {
        String classPath = String.join(" ", testClassPath());
        for (String jar : List.of(MeshHome.GATEWAY_JAR, MeshHome.EXPERT_JAR, MeshHome.ROUTER_JAR,
                MeshHome.KVCACHE_JAR)) {
            Path file = root.resolve(jar);
            Files.createDirectories(file.getParent());
            Manifest m = new Manifest();
            m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
            m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, FakeServiceMain.class.getName());
            m.getMainAttributes().put(Attributes.Name.CLASS_PATH, classPath);
            try (OutputStream out = Files.newOutputStream(file); JarOutputStream j = new JarOutputStream(out, m)) {
                j.flush();
            }
        }
        return new MeshHome(root);
    }

    /** Absolute URIs of this JVM's class path, looking through surefire's manifest-only booter jar. */
    private static List<String> testClassPath() throws IOException {
        List<String> out = new ArrayList<>();
        for (String entry : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            Path p = Path.of(entry).toAbsolutePath();
            String manifestCp = null;
            if (Files.isRegularFile(p) && p.toString().endsWith(".jar")) {
                try (JarFile jar = new JarFile(p.toFile())) {
                    Manifest m = jar.getManifest();
                    manifestCp = m == null ? null : m.getMainAttributes().getValue(Attributes.Name.CLASS_PATH);
                }
            }
            if (manifestCp != null && p.getFileName().toString().startsWith("surefirebooter")) {
                URI base = p.toUri();
                for (String e : manifestCp.trim().split("\\s+")) {
                    out.add(base.resolve(e).toString());
                }
            } else {
                out.add(p.toUri().toString());
            }
        }
        return out;
    }
}
