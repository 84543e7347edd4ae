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
 * {@code --dir} ({@link KvRestoreRuns}) and a file of the same size next to it ({@link DiskBandwidth}); then reads
 * the file, restores the prefixes straight from the tier, and (unless {@code --no-grpc}) again through the
 * service's {@code Get} stream on loopback TCP and on a Unix domain socket (where epoll is available), and as the
 * gateway restores on the service's host ({@code Locate} over a peer-uid domain socket, the blocks read from the
 * segment files by the reader itself: {@code LocalRestore}), and prints each
 * rate, its ratio to the disk's, and the CPU seconds per GiB of the service's threads and of the reader's
 * ({@link CpuClock}: robust to the machine's load, which the rates are not). Each restore path is
 * first run untimed on {@code --warmup-prefixes} extra prefixes, so the JIT has compiled it before it is timed.
 */
@Command(name = "kvcache-restore", mixinStandardHelpOptions = true,
        description = "KV-cache SSD restore bandwidth of large prefixes (SSD tier get, gRPC Get on loopback TCP and on "
                + "a Unix domain socket, Locate + local read on a peer-uid domain socket) ÷ the "
                + "same disk's sequential read bandwidth, page cache dropped (goal: >= 0.80).")
final class KvRestoreBenchCommand implements Callable<Integer> {
    static final double GOAL = 0.80;
    /** Untimed passes over the warm-up prefixes through {@code Get} before the first gRPC row (the JIT). */
    static final int JIT_PASSES = 3;
    private static final String BASELINE_FILE = "disk-baseline.bin";

    @Spec
    CommandSpec spec;

    @Option(names = "--dir", paramLabel = "DIR",
            description = "Where the segment files and the baseline file are written: the disk measured "
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

    @Option(names = "--keep", description = "Keep the segment and baseline files (default: deleted at the end).")
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
        Files.createDirectories(where);
        Path baseline = where.resolve(BASELINE_FILE);
        long bytes = blocks * layout.bytesPerBlock();
        err.printf(Locale.ROOT, "bench: writing %d blocks of %d bytes (%s) into an SSD tier in %s%n", blocks,
                layout.bytesPerBlock(), layout, where);
        err.flush();
        List<Row> rows = new ArrayList<>();
        List<PageCache.Method> methods = new ArrayList<>();
        try (KvRestoreRuns runs = KvRestoreRuns.fill(where, layout, s.heads(), blocks, prefixBlocks,
                warmupPrefixes)) {
            err.printf(Locale.ROOT, "bench: writing the %d-byte baseline file %s%n", bytes, baseline);
            err.flush();
            DiskBandwidth.write(baseline, bytes);
            List<Path> files = new ArrayList<>(runs.files());
            files.add(baseline);

            methods.add(PageCache.drop(files));
            CpuClock reader = CpuClock.caller().start();
            long t0 = System.nanoTime();
            long read = DiskBandwidth.read(baseline);
            rows.add(new Row("disk sequential read (" + DiskBandwidth.METHOD + ")", read, System.nanoTime() - t0, -1,
                    reader.elapsedNanos()));
            progress(err, rows);

            runs.restoreFromTier(true);
            methods.add(PageCache.drop(files));
            reader.start();
            t0 = System.nanoTime();
            read = runs.restoreFromTier(false);
            rows.add(new Row("SSD tier get, one block at a time (CRC32C checked)", read, System.nanoTime() - t0, -1,
                    reader.elapsedNanos()));
            progress(err, rows);

            if (!noGrpc) {
                // The JIT first: the per-message code runs once per block, and the warm-up prefixes alone are
                // below C2's thresholds, so whichever row came first paid for the compilation (service CPU 3.9 s/GiB
                // on TCP first, 1.1 on the socket after it). The rows' own warm-ups follow.
                try (KvRestoreRuns.GrpcServer jit = runs.serve(dramBytes, null)) {
                    for (int i = 0; i < JIT_PASSES; i++) {
                        runs.restoreOverGrpc(jit, true);
                    }
                }
                rows.add(grpcRow(runs, files, methods, dramBytes, null, false, err));
                if (InstanceEndpoint.domainSocketsAvailable()) {
                    Path socket = socketPath(where);
                    try {
                        rows.add(grpcRow(runs, files, methods, dramBytes, socket, false, err));
                    } finally {
                        Files.deleteIfExists(socket);
                    }
                    try {
                        rows.add(grpcRow(runs, files, methods, dramBytes, socket, true, err));
                    } finally {
                        Files.deleteIfExists(socket);
                    }
                } else {
                    err.println("bench: no Unix domain sockets here (Netty's epoll transport is missing): the Get "
                            + "row over one is left out");
                }
            }
            print(out, where, layout, blocks, prefixBlocks, runs.prefixCount(), methods, rows);
        } finally {
            if (!keep) {
                Files.deleteIfExists(baseline);
                KvRestoreRuns.deleteSegments(where);
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
                               Path socket, boolean local, PrintWriter err) throws Exception {
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
            Row r = new Row(path + ", one call per prefix (DRAM " + ByteSizes.format(dramBytes) + " over the SSD tier)",
                    read, nanos, service.elapsedNanos(), client.elapsedNanos());
            progress(err, List.of(r));
            return r;
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

    private static void progress(PrintWriter err, List<Row> rows) {
        Row r = rows.getLast();
        err.printf(Locale.ROOT, "bench: %s: %.0f MiB/s, CPU s/GiB service %s client %s%n", r.path(), r.mibPerSecond(),
                Row.perGib(r.serviceCpuNanos(), r.bytes()), Row.perGib(r.clientCpuNanos(), r.bytes()));
        err.flush();
    }

    private static void print(PrintWriter out, Path where, KvLayout layout, long blocks, int prefixBlocks, int prefixes,
                              List<PageCache.Method> methods, List<Row> rows) {
        PageCache.Method weakest = methods.stream().max(Enum::compareTo).orElse(PageCache.Method.NONE);
        long ram = ramBytes();
        out.printf(Locale.ROOT, "KV-cache restore, %s: %s of K/V in %d prefixes of up to %d blocks (%d bytes each, %s); "
                        + "%s before each row; load average %.2f, RAM %s%n%n", where, ByteSizes.format(blocks
                        * layout.bytesPerBlock()), prefixes, prefixBlocks, layout.bytesPerBlock(), layout,
                weakest.description(), ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                ram > 0 ? ByteSizes.format(ram) : "unknown");
        out.println("| read path | bytes | seconds | MiB/s | ÷ disk | service CPU s/GiB | client CPU s/GiB |");
        out.println("|---|---|---|---|---|---|---|");
        double disk = rows.getFirst().mibPerSecond();
        for (Row r : rows) {
            out.printf(Locale.ROOT, "| %s | %d | %.2f | %.0f | %.3f | %s | %s |%n", r.path(), r.bytes(),
                    r.nanos() / 1e9, r.mibPerSecond(), r.mibPerSecond() / disk, Row.perGib(r.serviceCpuNanos(), r.bytes()),
                    Row.perGib(r.clientCpuNanos(), r.bytes()));
        }
        out.println();
        double tier = rows.get(1).mibPerSecond() / disk;
        StringBuilder grpc = new StringBuilder();
        for (Row r : rows.subList(2, rows.size())) {
            grpc.append(String.format(Locale.ROOT, ", %s %.3f", r.path().startsWith(LOCAL_ROW) ? "Locate + local read"
                    : r.path().contains("Unix") ? "gRPC Get unix" : "gRPC Get tcp", r.mibPerSecond() / disk));
        }
        out.printf(Locale.ROOT, "Restore ÷ disk: SSD tier %.3f%s (goal >= %.2f): %s%n", tier, grpc,
                GOAL, rows.stream().skip(1).allMatch(r -> r.mibPerSecond() / disk >= GOAL) ? "met" : "missed");
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
