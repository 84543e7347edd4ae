package io.moemesh.cli.bench;

import io.moemesh.model.safetensors.SafetensorsFile;
import io.moemesh.model.synth.SynthDtype;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench weights-load}: issue 12's "weights beyond that load at disk speed, measured". The services map
 * a checkpoint's {@code .safetensors} files ({@link SafetensorsFile#open}: one read-only mapping per file, never
 * copied) and start without touching the weights, so a larger model starts as fast as a tiny one and its weights
 * come in on first touch. This bench measures that: with the page cache dropped, every tensor of every file mapped as
 * the services map them and touched once per 4 KiB page, in file order (what the gateway's first forward pass does,
 * layer by layer), or loaded with {@link MemorySegment#load()} (what the expert-service does for each expert an
 * assignment gives it), against the same files read front to back by one thread ({@link DiskBandwidth}, the faster
 * of two read sizes), in {@link AlternatingRounds}; medians and their ratios.
 */
@Command(name = "weights-load", mixinStandardHelpOptions = true,
        description = "Loading a checkpoint's weights as the services do (the safetensors files mapped, every page "
                + "touched once on first use, page cache dropped) ÷ the same files' sequential read.")
final class WeightsLoadBenchCommand implements Callable<Integer> {
    /** Bytes between two touches: one per page. */
    static final int PAGE = 4096;
    static final String DISK_ROW = "disk sequential read of the safetensors files";
    static final String MAPPED_ROW = "weights mapped (SafetensorsFile.open) and every page touched in file order";
    static final String LOADED_ROW = "weights mapped and each tensor's MemorySegment.load() in file order";

    @Spec
    CommandSpec spec;

    @Option(names = "--model-dir", paramLabel = "DIR",
            description = "A Hugging Face model directory; default: the bench model --model written in --models-dir.")
    Path modelDir;

    @Option(names = "--model", defaultValue = "M", description = "Bench model without --model-dir: S or M (default "
            + "${DEFAULT-VALUE}; M in bf16 is about 1.1 GB of weights).")
    String model;

    @Option(names = "--dtype", defaultValue = "bf16", description = "Its weights' dtype: f32 or bf16 (default "
            + "${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--models-dir", paramLabel = "DIR",
            description = "Where bench models are written (default $moemesh.home/target/bench-models).")
    Path modelsDir;

    @Option(names = "--rounds", defaultValue = "3",
            description = "Times each row is measured, in alternating order, the page cache dropped before each; "
                    + "medians shown (default ${DEFAULT-VALUE}).")
    int rounds;

    private static volatile long sink;

    /** One measured read: what, how many bytes, how long. */
    record Row(String path, long bytes, long nanos) {
        double mibPerSecond() {
            return bytes / (1024.0 * 1024.0) / (nanos / 1e9);
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        BenchOptions.positive("--rounds", rounds);
        Path dir = modelDir != null ? modelDir : BenchModels.ensure(modelsDir != null ? modelsDir
                : BenchModels.defaultCache(), model, SynthDtype.parse(dtype), err);
        List<Path> files = safetensors(dir);
        List<AlternatingRounds.Measure<Row>> measures = new ArrayList<>();
        for (int chunk : DiskBandwidth.CHUNK_BYTES) {
            measures.add(round -> {
                PageCache.drop(files);
                long t0 = System.nanoTime();
                long read = DiskBandwidth.readAll(files, chunk);
                return new Row(DISK_ROW + " (" + DiskBandwidth.method(chunk) + ")", read, System.nanoTime() - t0);
            });
        }
        List<PageCache.Method> methods = new ArrayList<>();
        for (boolean load : new boolean[] {false, true}) {
            measures.add(round -> {
                methods.add(PageCache.drop(files));
                long t0 = System.nanoTime();
                long touched = load ? loadAll(files) : touchAll(files);
                return new Row(load ? LOADED_ROW : MAPPED_ROW, touched, System.nanoTime() - t0);
            });
        }
        List<List<Row>> samples = AlternatingRounds.run(measures, rounds, (r, round) -> {
            err.printf(Locale.ROOT, "bench: %s: %.0f MiB/s%n", r.path(), r.mibPerSecond());
            err.flush();
        });
        List<Row> rows = samples.stream().map(x -> AlternatingRounds.median(x, Row::mibPerSecond)).toList();
        double disk = rows.stream().filter(r -> r.path().startsWith(DISK_ROW)).mapToDouble(Row::mibPerSecond).max()
                .orElseThrow();
        PageCache.Method weakest = methods.stream().max(Enum::compareTo).orElse(PageCache.Method.NONE);
        out.printf(Locale.ROOT, "Weights load, %s: %d safetensors file(s), %s; %s before each row; %d round%s, rows in "
                        + "alternating order, each row's median shown; load average %.2f%n%n", dir, files.size(),
                ByteSizes.format(totalBytes(files)), weakest.description(),
                rounds, rounds == 1 ? "" : "s", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        out.println("| read path | bytes | seconds | MiB/s | ÷ disk | MiB/s per round |");
        out.println("|---|---|---|---|---|---|");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            out.printf(Locale.ROOT, "| %s | %d | %.3f | %.0f | %.3f | %s |%n", r.path(), r.bytes(), r.nanos() / 1e9,
                    r.mibPerSecond(), r.mibPerSecond() / disk, AlternatingRounds.perRound(samples.get(i),
                            Row::mibPerSecond));
        }
        out.printf(Locale.ROOT, "%nWeights mapped and touched ÷ disk: %.3f; loaded ÷ disk: %.3f%n",
                rows.get(rows.size() - 2).mibPerSecond() / disk, rows.getLast().mibPerSecond() / disk);
        if (weakest == PageCache.Method.NONE) {
            out.println("Warning: the page cache was not dropped; the rates may be memory's, not the disk's");
        }
        out.flush();
        return 0;
    }

    /** The model's {@code .safetensors} files, by name. */
    static List<Path> safetensors(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--model-dir " + dir + " is not a directory");
        }
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> files = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (files.isEmpty()) {
                throw new IllegalArgumentException("--model-dir " + dir + " has no .safetensors files");
            }
            return files;
        }
    }

    /**
     * Maps every file as the services do and reads one byte of every 4 KiB page of every tensor, tensors in the
     * order of their bytes in the file; returns the tensor bytes covered.
     */
    static long touchAll(List<Path> files) {
        long[] sum = {0};
        long bytes = eachTensor(files, data -> {
            for (long at = 0; at < data.byteSize(); at += PAGE) {
                sum[0] += data.get(ValueLayout.JAVA_BYTE, at);
            }
        });
        sink = sum[0]; // a sum that is stored: the JIT cannot drop the reads
        return bytes;
    }

    /**
     * Maps every file as the services do and loads each tensor with {@link MemorySegment#load()}, tensors in the order
     * of their bytes in the file, as the expert-service's cpu backend loads the experts an assignment gives it
     * ({@code CpuExpertBackend.load}); returns the tensor bytes covered.
     */
    static long loadAll(List<Path> files) {
        return eachTensor(files, MemorySegment::load);
    }

    /** Maps each file as the services do ({@link SafetensorsFile#open}) and hands over its tensors in file order. */
    private static long eachTensor(List<Path> files, Consumer<MemorySegment> action) {
        long bytes = 0;
        for (Path f : files) {
            try (Arena arena = Arena.ofConfined()) {
                SafetensorsFile st = SafetensorsFile.open(f, arena);
                List<MemorySegment> tensors = st.names().stream().map(n -> st.tensor(n).orElseThrow().data())
                        .sorted(Comparator.comparingLong(MemorySegment::address)).toList();
                for (MemorySegment data : tensors) {
                    action.accept(data);
                    bytes += data.byteSize();
                }
            }
        }
        return bytes;
    }

    private static long totalBytes(List<Path> files) throws IOException {
        long total = 0;
        for (Path f : files) {
            total += Files.size(f);
        }
        return total;
    }
}
