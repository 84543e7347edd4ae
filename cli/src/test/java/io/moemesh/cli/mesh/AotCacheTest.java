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
    void key_sameForTheSameEntries_whenTheJarIsWrittenAgain() throws IOException {
        Path jar = bootJar(dir.resolve("moemesh-router-service.jar"), "same");
        String before = AotCache.key(jar);
        Files.delete(jar);
        bootJar(jar, "same");
        assertThat(AotCache.key(jar)).as("a rebuild with the same classes keeps its cache").isEqualTo(before);
    }

    @Test
    void key_changes_whenOneByteOfAStoredNestedJarChanges() throws IOException {
        byte[] nested = new byte[64 * 1024];
        java.util.Arrays.fill(nested, (byte) 7);
        Path jar = dir.resolve("moemesh-expert-service.jar");
        storedEntryJar(jar, nested);
        String before = AotCache.key(jar);
        long size = Files.size(jar);
        nested[40_000] = 8;
        storedEntryJar(jar, nested);
        assertThat(Files.size(jar)).as("same sizes: only the entry's CRC-32 tells them apart").isEqualTo(size);
        assertThat(AotCache.key(jar)).isNotEqualTo(before);
    }

    @Test
    void key_ofAFileThatIsNotAZip_hashesItsBytes() throws IOException {
        Path a = Files.writeString(dir.resolve("a.jar"), "not a zip at all");
        Path b = Files.writeString(dir.resolve("b.jar"), "not a zip at All");
        assertThat(AotCache.key(a)).hasSize(16).isNotEqualTo(AotCache.key(b)).isEqualTo(AotCache.key(a));
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

    /** A jar whose one entry, BOOT-INF/lib/nested.jar, is STORED (as Spring Boot stores nested jars). */
    private static void storedEntryJar(Path file, byte[] nested) throws IOException {
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(nested);
        try (OutputStream out = Files.newOutputStream(file); JarOutputStream j = new JarOutputStream(out)) {
            ZipEntry e = new ZipEntry("BOOT-INF/lib/nested.jar");
            e.setMethod(ZipEntry.STORED);
            e.setSize(nested.length);
            e.setCompressedSize(nested.length);
            e.setCrc(crc.getValue());
            e.setTime(0);
            j.putNextEntry(e);
            j.write(nested);
            j.closeEntry();
        }
    }
}
