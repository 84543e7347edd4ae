package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.zip.ZipEntry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AotCacheTest {

    @TempDir
    Path dir;

    @Test
    void folder_changes_whenTheJarIsRebuiltWithOtherBytes() throws IOException {
        Path jar = bootJar(dir.resolve("moemesh-gateway.jar"), "v1");
        AotCache cache = AotCache.at(dir.resolve("cache"));
        Path before = cache.folder(jar);
        assertThat(cache.folder(jar)).isEqualTo(before);
        bootJar(jar, "v2");
        assertThat(cache.folder(jar)).isNotEqualTo(before);
        assertThat(before.getFileName().toString()).startsWith("moemesh-gateway-");
    }

    @Test
    void ready_onlyOnceTheArchiveOfThisJarsKeyExists() throws IOException {
        Path jar = bootJar(dir.resolve("moemesh-gateway.jar"), "v1");
        AotCache cache = AotCache.at(dir.resolve("cache"));
        assertThat(cache.ready(jar)).isFalse();
        Files.createDirectories(cache.folder(jar));
        Files.writeString(cache.folder(jar).resolve(AotCache.ARCHIVE), "archive");
        assertThat(cache.ready(jar)).isTrue();
        bootJar(jar, "v2");
        assertThat(cache.ready(jar)).as("a rebuilt jar never uses the old archive").isFalse();
    }

    @Test
    void apply_leavesPlainJarsAlone_andSwitchesReadyOnesToTheCache() throws IOException {
        Path plain = dir.resolve("plain.jar");
        try (OutputStream out = Files.newOutputStream(plain); JarOutputStream j = new JarOutputStream(out, new Manifest())) {
            j.flush();
        }
        Path boot = bootJar(dir.resolve("moemesh-expert-service.jar"), "v1");
        AotCache cache = AotCache.at(dir.resolve("cache"));
        Files.createDirectories(cache.folder(boot));
        Files.writeString(cache.folder(boot).resolve(AotCache.ARCHIVE), "archive");
        MeshState.Service a = service("a", plain);
        MeshState.Service b = service("b", boot);

        List<MeshState.Service> out = cache.apply(List.of(a, b), java.time.Duration.ofSeconds(5),
                new java.io.PrintWriter(java.io.Writer.nullWriter()));

        assertThat(out.get(0).command()).isEqualTo(a.command());
        assertThat(out.get(1).command()).containsExactly("java", "-Xmx1g",
                "-XX:AOTCache=" + cache.folder(boot).resolve("app.aot"), "-jar",
                cache.folder(boot).resolve("extracted").resolve("moemesh-expert-service.jar").toString(), "--x");
    }

    @Test
    void trainingEnvironment_zeroesPorts_andMovesWritableFoldersToScratch() {
        Map<String, String> t = AotCache.trainingEnvironment(Map.of("MOEMESH_KVCACHE_GRPC_PORT", "4000",
                "SERVER_PORT", "4001", "MOEMESH_KVCACHE_SSD_DIR", "/mesh/kvcache", "MOEMESH_KVCACHE_MODEL_DIRS", "/m"),
                Path.of("/scratch"));
        assertThat(t).containsEntry("MOEMESH_KVCACHE_GRPC_PORT", "0").containsEntry("SERVER_PORT", "0")
                .containsEntry("MOEMESH_KVCACHE_SSD_DIR", "/scratch/moemesh_kvcache_ssd_dir")
                .containsEntry("MOEMESH_KVCACHE_MODEL_DIRS", "/m");
    }

    @Test
    void off_inTheCallersEnvironment_meansNoCache() {
        MeshHome home = new MeshHome(dir);
        assertThat(AotCache.of(home, Map.of(AotCache.ENV, "off"))).isEmpty();
        assertThat(AotCache.of(home, Map.of()).orElseThrow().root()).isEqualTo(dir.resolve(".moemesh/aot-cache"));
        assertThat(AotCache.of(home, Map.of(AotCache.ENV, dir.resolve("c").toString())).orElseThrow().root())
                .isEqualTo(dir.resolve("c"));
    }

    private static MeshState.Service service(String name, Path jar) {
        return new MeshState.Service(name, 0, "", 1, 2, "/dev/null", List.of("java", "-Xmx1g", "-jar", jar.toString(),
                "--x"), Map.of());
    }

    /** A jar whose manifest names a Start-Class, as Spring Boot's executable jars do; {@code content} varies it. */
    private static Path bootJar(Path file, String content) throws IOException {
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().putValue("Start-Class", "io.moemesh.Fake");
        try (OutputStream out = Files.newOutputStream(file); JarOutputStream j = new JarOutputStream(out, m)) {
            j.putNextEntry(new ZipEntry("content.txt"));
            j.write(content.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            j.closeEntry();
        }
        return file;
    }
}
