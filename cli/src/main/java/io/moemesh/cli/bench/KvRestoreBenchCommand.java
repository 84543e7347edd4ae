package io.moemesh.cli.bench;

import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.kvcache.LocalBlockReader;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench kvcache-restore}: issue 11's restore goal, SSD restore throughput of large prefixes ≥ 0.80 of
 * the same disk's sequential read bandwidth, both measured in the same run with the page cache dropped before each
 * ({@link PageCache}). Writes {@code --total} bytes of K/V blocks of the bench model's layout into a real SSD tier in
 * {@code --dir} ({@link KvRestoreRuns}); then, for {@code --rounds} rounds in alternating order, reads the segment
 * files front to back as {@code dd} would ({@link DiskBandwidth}: the yardstick), restores the prefixes straight from
 * the tier, and (unless {@code --no-grpc}) again through the service's {@code Get} stream on loopback TCP and on a
 * Unix domain socket (where epoll is available), and as the gateway restores on the service's host ({@code Locate}
 * over a peer-uid domain socket, the blocks read from the segment files by the reader itself: {@code LocalRestore});
 * and prints each row's median rate, its ratio to the disk's median, and the CPU seconds per GiB of the service's
 * threads and of the reader's ({@link CpuClock}: robust to the machine's load, which the rates are not). Each restore
 * path is first run untimed on {@code --warmup-prefixes} extra prefixes, so the JIT has compiled it before it is timed.
 *
 * <p>Why the yardstick reads the segment files themselves and every row is repeated: on a virtual disk the host caches
 * files, and one file's read rate moves with that cache (a random file written next to the segments read at 1.0-3.3
 * GB/s while the segments read at 2.3-5.4 GB/s in the same minutes, docs/performance.md). Reading the same bytes on
 * both sides, alternately, compares the read paths rather than the host's cache of two different files.
 */
@Command(name = "kvcache-restore", mixinStandardHelpOptions = true,
        description = "KV-cache SSD restore bandwidth of large prefixes (SSD tier get, gRPC Get on loopback TCP and on "
                + "a Unix domain socket, Locate + local read on a peer-uid domain socket) ÷ the "
                + "same disk's sequential read bandwidth, page cache dropped (goal: >= 0.80).")
final class KvRestoreBenchCommand implements Callable<Integer> {
    static final double GOAL = 0.80;
    /** Untimed passes over the warm-up prefixes through {@code Get} before the first gRPC row (the JIT). */
    static final int JIT_PASSES = 3;
    /** The yardstick row's name: the tier's own segment files read front to back. */
    static final String DISK_ROW = "disk sequential read of the segment files";
    static final String TIER_ROW = "SSD tier get, one block at a time (CRC32C checked)";

    @Spec
    CommandSpec spec;

    @Option(names = "--dir", paramLabel = "DIR",
            description = "Where the segment files are written: the disk measured; not a directory with segment "
                    + "files the bench did not write, such as a kvcache-service's (exit 2) "
                    + "(default $moemesh.home/target/bench-kvcache-restore).")
    Path dir;

    @Option(names = "--total", defaultValue = "4g", paramLabel = "SIZE",
            description = "K/V bytes written and restored, e.g. 512m, 4g (default ${DEFAULT-VALUE}).")
    String total;

    @Option(names = "--model", defaultValue = "M",
            description = "Bench model whose block layout is stored: S or M (default ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--block-tokens", defaultValue = "16",
            description = "Tokens per block, as moemesh.kvcache.block-tokens (default ${DEFAULT-VALUE}).")
    int blockTokens;

    @Option(names = "--prefix-tokens", defaultValue = "4096",
            description = "Tokens per prefix; each prefix is one Get (default ${DEFAULT-VALUE}).")
    int prefixTokens;

    @Option(names = "--dram", defaultValue = "256m", paramLabel = "SIZE",
            description = "The DRAM tier above the SSD tier on the gRPC path (default ${DEFAULT-VALUE}, as under up).")
    String dram;

    @Option(names = "--warmup-prefixes", defaultValue = "4",
            description = "Extra prefixes, written first and read by each path before it is timed (the JIT compiles "
                    + "the path on them), never timed (default ${DEFAULT-VALUE}).")
    int warmupPrefixes;

    @Option(names = "--no-grpc", description = "Skip the gRPC Get path.")
    boolean noGrpc;

    @Option(names = "--rounds", defaultValue = "3",
            description = "Times each row is measured, in alternating order (forward, backward, ...), the page cache "
                    + "dropped before each; the table gives each row's median (default ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--keep", description = "Keep the segment files (default: deleted at the end; a later run in the "
            + "same --dir deletes them first).")
    boolean keep;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        long totalBytes = ByteSizes.parse("--total", total);
        long dramBytes = ByteSizes.parse("--dram", dram);
        BenchOptions.positive("--block-tokens", blockTokens);
        BenchOptions.positive("--prefix-tokens", prefixTokens);
        BenchOptions.notNegative("--warmup-prefixes", warmupPrefixes);
        BenchOptions.positive("--rounds", rounds);
        SynthSpec s = BenchModels.spec(model, SynthDtype.F32);
        int headDim = s.headDim().orElse(s.hidden() / s.heads());
        KvLayout layout = new KvLayout(s.layers(), s.kvHeads(), headDim, blockTokens);
        if (dramBytes < layout.bytesPerBlock()) {
            throw new IllegalArgumentException("--dram must hold one block of " + layout.bytesPerBlock() + " bytes, got "
                    + dramBytes);
        }
        long blocks = Math.max(1, totalBytes / layout.bytesPerBlock());
        int prefixBlocks = Math.max(1, prefixTokens / blockTokens);
        Path where = (dir != null ? dir : Path.of(System.getProperty("moemesh.home", ".")).resolve("target")
                .resolve("bench-kvcache-restore")).toAbsolutePath().normalize();
        // Before the try: its end deletes the segment files, which must not happen to another tier's
        KvRestoreRuns.claim(where);
        err.printf(Locale.ROOT, "bench: writing %d blocks of %d bytes (%s) into an SSD tier in %s%n", blocks,
                layout.bytesPerBlock(), layout, where);
        err.flush();
        List<PageCache.Method> methods = new ArrayList<>();
        try (KvRestoreRuns runs = KvRestoreRuns.fill(where, layout, s.heads(), blocks, prefixBlocks,
                warmupPrefixes)) {
            List<Path> files = runs.files();
            List<AlternatingRounds.Measure<Row>> measures = new ArrayList<>();
            for (int chunk : DiskBandwidth.CHUNK_BYTES) {
                measures.add(round -> {
                    methods.add(PageCache.drop(files));
                    CpuClock reader = CpuClock.caller().start();
                    long t0 = System.nanoTime();
                    long read = DiskBandwidth.readAll(files, chunk);
                    return new Row(DISK_ROW + " (" + DiskBandwidth.method(chunk) + ")", read, System.nanoTime() - t0,
                            -1, reader.elapsedNanos());
                });
            }
            runs.restoreFromTier(true);
            measures.add(round -> {
                methods.add(PageCache.drop(files));
                CpuClock reader = CpuClock.caller().start();
                long t0 = System.nanoTime();
                long read = runs.restoreFromTier(false);
                return new Row(TIER_ROW, read, System.nanoTime() - t0, -1, reader.elapsedNanos());
            });
            if (!noGrpc) {
                // The JIT first: the per-message code runs once per block, and the warm-up prefixes alone are
                // below C2's thresholds, so whichever row came first paid for the compilation (service CPU 3.9 s/GiB
                // on TCP first, 1.1 on the socket after it). The rows' own warm-ups follow.
                try (KvRestoreRuns.GrpcServer jit = runs.serve(dramBytes, null)) {
                    for (int i = 0; i < JIT_PASSES; i++) {
                        runs.restoreOverGrpc(jit, true);
                    }
                }
                measures.add(round -> grpcRow(runs, files, methods, dramBytes, null, false));
                if (InstanceEndpoint.domainSocketsAvailable()) {
                    Path socket = socketPath(where);
                    measures.add(round -> grpcRow(runs, files, methods, dramBytes, socket, false));
                    measures.add(round -> grpcRow(runs, files, methods, dramBytes, socket, true));
                } else {
                    err.println("bench: no Unix domain sockets here (Netty's epoll transport is missing): the Get "
                            + "rows over one are left out");
                }
            }
            // One untimed read of every file first: the first read of freshly written files on a virtual disk is
            // the host's (1.7 GB/s in a run where the next reads of the same files took 3.3-3.6), and whichever row
            // came first would pay it.
            PageCache.drop(files);
            DiskBandwidth.readAll(files, DiskBandwidth.CHUNK_BYTES.getFirst());
            List<List<Row>> samples = AlternatingRounds.run(measures, rounds, (r, round) -> {
                err.printf(Locale.ROOT, "bench: round %d/%d, %s: %.0f MiB/s, CPU s/GiB service %s client %s%n",
                        round, rounds, r.path(), r.mibPerSecond(),
                        Row.perGib(r.serviceCpuNanos(), r.bytes()), Row.perGib(r.clientCpuNanos(), r.bytes()));
                err.flush();
            });
            print(out, where, layout, blocks, prefixBlocks, runs.prefixCount(), methods, samples);
        } finally {
            if (!keep) {
                KvRestoreRuns.release(where);
            }
        }
        return 0;
    }

    /**
     * The restore through the service's {@code Get} on loopback TCP, or on the Unix domain socket {@code socket}, or
     * ({@code local}) through {@code Locate} on that socket as a peer-uid one and the reader's own reads of the
     * segment files; untimed on the warm-up prefixes first; the service's and the client's CPU time counted apart.
     */
    /** The last row's name: the gateway's restore on the service's host. */
    static final String LOCAL_ROW = "Locate + local read (peer-uid domain socket)";

    private static Row grpcRow(KvRestoreRuns runs, List<Path> files, List<PageCache.Method> methods, long dramBytes,
                               Path socket, boolean local) throws Exception {
        try (KvRestoreRuns.GrpcServer grpc = runs.serve(dramBytes, socket, local)) {
            if (local) {
                runs.restoreLocally(grpc, true);
            } else {
                runs.restoreOverGrpc(grpc, true);
            }
            methods.add(PageCache.drop(files));
            CpuClock service = new CpuClock(n -> n.startsWith(KvRestoreRuns.SERVICE_THREADS), false).start();
            CpuClock client = new CpuClock(n -> n.startsWith(KvRestoreRuns.CLIENT_THREADS)
                    || n.equals(LocalBlockReader.THREAD_NAME), true).start();
            long t0 = System.nanoTime();
            long read = local ? runs.restoreLocally(grpc, false) : runs.restoreOverGrpc(grpc, false);
            long nanos = System.nanoTime() - t0;
            String path = local ? LOCAL_ROW
                    : "gRPC Get " + (socket == null ? "on loopback TCP" : "on a Unix domain socket");
            return new Row(path + ", one call per prefix (DRAM " + ByteSizes.format(dramBytes) + " over the SSD tier)",
                    read, nanos, service.elapsedNanos(), client.elapsedNanos());
        } finally {
            if (socket != null) {
                Files.deleteIfExists(socket);
            }
        }
    }

    /**
     * The bench service's socket: in {@code where} when the path fits {@code sun_path}, else in the temporary
     * directory (a deep {@code --dir}).
     */
    private static Path socketPath(Path where) throws java.io.IOException {
        Path p = where.resolve("kvbench.sock");
        if (p.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length
                > InstanceEndpoint.MAX_SOCKET_PATH_BYTES) {
            p = Files.createTempDirectory("kvbench").resolve("kvbench.sock");
        }
        Files.deleteIfExists(p);
        return p;
    }

    /**
     * One measured read path.
     *
     * @param serviceCpuNanos CPU time of the service's threads during the row; -1 when the row has no service
     * @param clientCpuNanos  CPU time of the reader: the reading thread, and on a gRPC row the client's event loop
     */
    record Row(String path, long bytes, long nanos, long serviceCpuNanos, long clientCpuNanos) {
        double mibPerSecond() {
            return bytes / (1024.0 * 1024.0) / (nanos / 1e9);
        }

        /** CPU seconds per GiB moved, or "-" when not measured. */
        static String perGib(long cpuNanos, long bytes) {
            return cpuNanos < 0 ? "-" : String.format(Locale.ROOT, "%.3f", cpuNanos / 1e9 / (bytes / (double) (1L << 30)));
        }
    }

    private static void print(PrintWriter out, Path where, KvLayout layout, long blocks, int prefixBlocks, int prefixes,
                              List<PageCache.Method> methods, List<List<Row>> samples) {
        PageCache.Method weakest = methods.stream().max(Enum::compareTo).orElse(PageCache.Method.NONE);
        long ram = ramBytes();
        int rounds = samples.getFirst().size();
        out.printf(Locale.ROOT, "KV-cache restore, %s: %s of K/V in %d prefixes of up to %d blocks (%d bytes each, %s); "
                        + "%s before each row; %d round%s, rows in alternating order, each row's median shown; "
                        + "load average %.2f, RAM %s%n%n", where, ByteSizes.format(blocks * layout.bytesPerBlock()),
                prefixes, prefixBlocks, layout.bytesPerBlock(), layout, weakest.description(), rounds,
                rounds == 1 ? "" : "s", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                ram > 0 ? ByteSizes.format(ram) : "unknown");
        out.println("| read path | bytes | seconds | MiB/s | ÷ disk | service CPU s/GiB | client CPU s/GiB "
                + "| MiB/s per round |");
        out.println("|---|---|---|---|---|---|---|---|");
        List<Row> rows = samples.stream().map(x -> AlternatingRounds.median(x, Row::mibPerSecond)).toList();
        // The disk's rate is its faster read size's (DiskBandwidth): the yardstick is never the slower reader.
        double disk = rows.stream().filter(r -> r.path().startsWith(DISK_ROW)).mapToDouble(Row::mibPerSecond).max()
                .orElseThrow();
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            String each = AlternatingRounds.perRound(samples.get(i), Row::mibPerSecond);
            out.printf(Locale.ROOT, "| %s | %d | %.2f | %.0f | %.3f | %s | %s | %s |%n", r.path(), r.bytes(),
                    r.nanos() / 1e9, r.mibPerSecond(), r.mibPerSecond() / disk,
                    Row.perGib(r.serviceCpuNanos(), r.bytes()), Row.perGib(r.clientCpuNanos(), r.bytes()), each);
        }
        out.println();
        StringBuilder ratios = new StringBuilder();
        boolean met = true;
        for (Row r : rows.stream().filter(r -> !r.path().startsWith(DISK_ROW)).toList()) {
            String name = r.path().startsWith(TIER_ROW) ? "SSD tier" : r.path().startsWith(LOCAL_ROW)
                    ? "Locate + local read" : r.path().contains("Unix") ? "gRPC Get unix" : "gRPC Get tcp";
            ratios.append(String.format(Locale.ROOT, "%s%s %.3f", ratios.isEmpty() ? "" : ", ", name,
                    r.mibPerSecond() / disk));
            // The goal is the restores that read the disk themselves: the service's own reads and the gateway's on
            // the service's host. Get hands the bytes to another process through a socket, which no disk sets.
            if (!r.path().startsWith("gRPC")) {
                met &= r.mibPerSecond() / disk >= GOAL;
            }
        }
        out.printf(Locale.ROOT, "Restore ÷ disk: %s (goal >= %.2f for the reads of the disk: SSD tier and Locate + "
                + "local read): %s%n", ratios, GOAL, met ? "met" : "missed");
        if (weakest == PageCache.Method.NONE) {
            out.printf(Locale.ROOT, "Warning: the page cache was not dropped; %s of data vs %s of RAM%n",
                    ByteSizes.format(blocks * layout.bytesPerBlock()), ram > 0 ? ByteSizes.format(ram) : "unknown");
        }
        out.flush();
    }

    private static long ramBytes() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? os.getTotalMemorySize() : -1;
    }
}
