package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code moemesh bench kvcache-restore} at a tiny size: the report's shape, never its timings. */
class KvRestoreBenchCommandTest {

    @Test
    void kvcacheRestore_printsDiskTierGrpcAndLocalReadRows_withPositiveRatios_andDeletesItsFiles(@TempDir Path dir)
            throws Exception {
        // model S: 8 layers x 2 KV heads x 64 dims x 16 tokens = 128 KiB blocks; 4 MiB = 32 blocks in 4 prefixes
        CliRun r = CliRun.of("bench", "kvcache-restore", "--dir", dir.toString(), "--model", "S", "--total", "4m",
                "--prefix-tokens", "128", "--dram", "256k", "--warmup-prefixes", "1", "--rounds", "2");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("4.0 MiB of K/V in 4 prefixes of up to 8 blocks (131072 bytes each");
        assertThat(r.out()).containsPattern("page cache (dropped|of the files evicted|NOT dropped)");
        List<String[]> rows = r.out().lines().filter(l -> l.startsWith("| disk") || l.startsWith("| SSD")
                || l.startsWith("| gRPC") || l.startsWith("| Locate")).map(l -> l.split("\\|")).toList();
        boolean unix = InstanceEndpoint.domainSocketsAvailable();
        assertThat(rows).extracting(c -> c[1].strip().split(" ")[0]).containsExactlyElementsOf(unix
                ? List.of("disk", "disk", "SSD", "gRPC", "gRPC", "Locate") : List.of("disk", "disk", "SSD", "gRPC"));
        assertThat(rows.get(0)[1]).contains("FileChannel.read of 4.0 MiB");
        assertThat(rows.get(1)[1]).contains("FileChannel.read of 256 KiB");
        // the yardstick is the faster read size: one disk row is 1.000, the other at most that
        assertThat(List.of(Double.parseDouble(rows.get(0)[5].strip()), Double.parseDouble(rows.get(1)[5].strip())))
                .contains(1.0).allMatch(x -> x <= 1.0);
        assertThat(rows.get(3)[1]).contains("on loopback TCP");
        if (unix) {
            assertThat(rows.get(4)[1]).contains("on a Unix domain socket");
            assertThat(rows.get(5)[1]).startsWith(" Locate + local read (peer-uid domain socket)");
        }
        assertThat(r.out()).contains("| read path | bytes | seconds | MiB/s | ÷ disk | service CPU s/GiB | client CPU s/GiB "
                + "| MiB/s per round |");
        assertThat(r.out()).contains("2 rounds, rows in alternating order, each row's median shown");
        assertThat(rows.getFirst()[1]).startsWith(" disk sequential read of the segment files");
        assertThat(rows.get(1)[1]).startsWith(" disk sequential read of the segment files");
        for (String[] row : rows) {
            if (!row[1].contains("disk")) {
                assertThat(Long.parseLong(row[2].strip())).as("bytes of %s", row[1]).isEqualTo(4L << 20);
            } else {
                // the whole segment files: the warm-up prefix and the record headers too
                assertThat(Long.parseLong(row[2].strip())).as("bytes of %s", row[1]).isGreaterThan(4L << 20);
            }
            assertThat(row[8].strip().split(" / ")).as("one rate per round of %s", row[1]).hasSize(2);
            assertThat(Double.parseDouble(row[5].strip())).as("ratio of %s", row[1]).isPositive();
            assertThat(Double.parseDouble(row[7].strip())).as("client CPU of %s", row[1]).isPositive();
            if (row[1].contains("Locate")) {
                // the service only answers one Locate per prefix: a few calls' CPU, which may round to 0.000
                assertThat(Double.parseDouble(row[6].strip())).as("service CPU of %s", row[1]).isNotNegative();
            } else if (row[1].contains("gRPC")) {
                assertThat(Double.parseDouble(row[6].strip())).as("service CPU of %s", row[1]).isPositive();
            } else {
                assertThat(row[6].strip()).as("no service on %s", row[1]).isEqualTo("-");
            }
        }
        assertThat(r.out()).containsPattern("Restore ÷ disk: SSD tier [0-9.]+, gRPC Get tcp [0-9.]+"
                + (unix ? ", gRPC Get unix [0-9.]+, Locate \\+ local read [0-9.]+" : "")
                + " \\(goal >= 0.80 for the reads of the disk: SSD tier and Locate \\+ local read\\): (met|missed)");
        try (Stream<Path> left = Files.list(dir)) {
            assertThat(left).as("segment files deleted").isEmpty();
        }
    }

    /**
     * The bench deletes the segment files of its --dir, first and at the end: a directory with segment files it did
     * not write (a kvcache-service's SSD tier, say up's <state-dir>/kvcache) is refused before anything is deleted.
     */
    @Test
    void dirWithSegmentFilesTheBenchDidNotWrite_isRefusedWithExitTwo_andTheFilesStay(@TempDir Path dir)
            throws Exception {
        Path foreign = dir.resolve("seg-0000000000000001.kvseg");
        Files.write(foreign, new byte[] {1, 2, 3});
        CliRun r = CliRun.of("bench", "kvcache-restore", "--dir", dir.toString(), "--model", "S", "--total", "4m",
                "--prefix-tokens", "128", "--dram", "256k", "--warmup-prefixes", "1", "--rounds", "1");
        assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh kvcache-restore: --dir " + dir + " holds 1 segment file(s) "
                + "(seg-0000000000000001.kvseg, ...) this bench did not write, perhaps a kvcache-service's SSD tier; "
                + "the bench would delete them: name an empty or new directory");
        assertThat(foreign).hasBinaryContent(new byte[] {1, 2, 3});
        try (Stream<Path> left = Files.list(dir)) {
            assertThat(left).containsExactly(foreign);
        }
    }

    /**
     * A kvcache-service keeps its segments one level down ({@code <ssd-dir>/<fingerprint>-b16/}, up's
     * {@code <state-dir>/kvcache}): that directory is refused too, the bench writing nothing into the service's
     * volume; so is one whose tier holds only its open tier's lock file (no segment written yet).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"seg-0000000000000001.kvseg", ".lock"})
    void kvcacheServicesSsdDir_withItsTierOneLevelDown_isRefusedWithExitTwo_andNothingIsWritten(String file,
                                                                                               @TempDir Path dir)
            throws Exception {
        Path tier = Files.createDirectories(dir.resolve("0123456789abcdef-b16"));
        Path foreign = tier.resolve(file);
        Files.write(foreign, new byte[] {1, 2, 3});
        CliRun r = CliRun.of("bench", "kvcache-restore", "--dir", dir.toString(), "--model", "S", "--total", "4m",
                "--prefix-tokens", "128", "--dram", "256k", "--warmup-prefixes", "1", "--rounds", "1");
        assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh kvcache-restore: --dir " + dir + " is a kvcache-service's SSD "
                + "directory (0123456789abcdef-b16/ in it is an SSD tier): the bench would fill that service's "
                + "volume; name an empty or new directory");
        assertThat(foreign).hasBinaryContent(new byte[] {1, 2, 3});
        try (Stream<Path> left = Files.list(dir)) {
            assertThat(left).containsExactly(tier);
        }
    }

    /** Segment files the bench wrote (its marker beside them, e.g. left by --keep) are its own to delete. */
    @Test
    void segmentFilesOfAClaimedDir_areTheBenchsToDelete_othersNever(@TempDir Path dir) throws Exception {
        Path own = dir.resolve("own");
        KvRestoreRuns.claim(own);
        Files.write(own.resolve("seg-0000000000000001.kvseg"), new byte[] {1});
        Files.write(own.resolve("notes.txt"), new byte[] {2});
        KvRestoreRuns.claim(own); // a later run: its own files are no reason to refuse
        KvRestoreRuns.release(own);
        try (Stream<Path> left = Files.list(own)) {
            assertThat(left).extracting(p -> p.getFileName().toString()).containsExactly("notes.txt");
        }

        Path foreign = dir.resolve("foreign");
        Files.createDirectories(foreign);
        Files.write(foreign.resolve("seg-0000000000000001.kvseg"), new byte[] {1});
        KvRestoreRuns.deleteSegments(foreign);
        KvRestoreRuns.release(foreign);
        assertThat(foreign.resolve("seg-0000000000000001.kvseg")).exists();
    }

    @Test
    void pageCacheFadvise_evictsAForcedFile_withoutPrivileges(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("f.bin");
        Files.write(f, new byte[1 << 20]);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
        PageCache.fadvise(f);
        assertThat(DiskBandwidth.read(f, 256 << 10)).isEqualTo(1 << 20);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--total 0 | --total must be a positive size such as 512m or 4g, got 0",
            "--total 4x | --total must be a positive size such as 512m or 4g, got 4x",
            "--dram 1k | --dram must hold one block of 262144 bytes, got 1024",
            "--prefix-tokens 0 | --prefix-tokens must be at least 1, got 0",
            "--rounds 0 | --rounds must be at least 1, got 0",
            "--model L | unknown bench model L: use S or M"})
    void badOptions_exitTwo_withOneLineNamingTheOption(String args, String message, @TempDir Path dir) {
        CliRun r = CliRun.of(("bench kvcache-restore --dir " + dir + " " + args).split(" "));
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh kvcache-restore: " + message);
    }
}
