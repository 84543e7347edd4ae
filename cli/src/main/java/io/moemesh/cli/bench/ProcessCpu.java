package io.moemesh.cli.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * CPU seconds (user + system) a process has used since it started, from Linux's {@code /proc/<pid>/stat}, and split
 * by the kind of thread that used them, from {@code /proc/<pid>/task/<tid>/stat}: the JIT compilers (HotSpot names
 * them {@code C2 CompilerThread<n>} and {@code C1 CompilerThread<n>}), the garbage collector (ParallelGC's and G1's
 * workers, {@code GC Thread#<n>} / {@code G1 ...}, and the {@code VM Thread}, which runs SerialGC's collections and
 * every other safepoint operation), {@code main} (the thread that runs {@code main()}, where Spring builds the context; Linux calls it
 * {@code java}, the launcher's name, as HotSpot renames only the threads it starts), and the rest. {@code other} is
 * the total minus the four, so it includes threads that have already exited (the process's counters keep their
 * time; a thread's counters go with it).
 *
 * <p>Why CPU seconds: on a machine with fewer cores than starting JVMs, {@code up} takes about the sum of the
 * services' CPU time, and CPU time, unlike wall time, hardly depends on what else the machine runs.
 */
record ProcessCpu(double total, double c2, double c1, double gc, double main, double other) {
    /**
     * Clock ticks per second of {@code /proc}'s counters: USER_HZ, which the kernel fixes at 100 for user space on
     * every architecture Linux exports it for (proc(5): "sysconf(_SC_CLK_TCK)"; it is 100 wherever the JDK runs).
     */
    static final double TICKS_PER_SECOND = ProcStat.TICKS_PER_SECOND;

    /** The process's CPU time now; empty off Linux or when it has exited. */
    static Optional<ProcessCpu> of(long pid) {
        Path proc = Path.of("/proc", Long.toString(pid));
        try {
            double total = seconds(Files.readString(proc.resolve("stat")));
            double c2 = 0, c1 = 0, gc = 0, main = 0;
            try (DirectoryStream<Path> tasks = Files.newDirectoryStream(proc.resolve("task"))) {
                for (Path task : tasks) {
                    String stat;
                    try {
                        stat = Files.readString(task.resolve("stat"));
                    } catch (IOException e) {
                        continue; // the thread exited while listed: its time is in the process's total
                    }
                    double s = seconds(stat);
                    switch (kind(comm(stat))) {
                        case C2 -> c2 += s;
                        case C1 -> c1 += s;
                        case GC -> gc += s;
                        case MAIN -> main += s;
                        case OTHER -> { }
                    }
                }
            }
            return Optional.of(new ProcessCpu(total, c2, c1, gc, main, Math.max(0, total - c2 - c1 - gc - main)));
        } catch (IOException | UncheckedIOException e) {
            return Optional.empty();
        }
    }

    /** The kinds of threads the split reports. */
    enum Kind { C2, C1, GC, MAIN, OTHER }

    /** A thread's kind by its name (its {@code comm}, which Linux cuts to 15 characters). */
    static Kind kind(String comm) {
        if (comm.startsWith("C2 CompilerThre")) {
            return Kind.C2;
        }
        if (comm.startsWith("C1 CompilerThre")) {
            return Kind.C1;
        }
        if (comm.startsWith("GC Thread") || comm.startsWith("G1 ") || comm.equals("VM Thread")) {
            return Kind.GC;
        }
        // The launcher's thread that creates the VM and runs main() keeps the launcher's name, "java" (HotSpot
        // names only the threads it starts); a thread named "main" by other tools counts the same.
        return comm.equals("java") || comm.equals("main") ? Kind.MAIN : Kind.OTHER;
    }

    /** The name in a stat line ({@link ProcStat#comm}). */
    static String comm(String stat) {
        return ProcStat.comm(stat);
    }

    /** utime + stime of a stat line (fields 14 and 15, proc(5)), in seconds. */
    static double seconds(String stat) {
        return ProcStat.ticks(stat) / TICKS_PER_SECOND;
    }

    /** The sum of two processes' times, kind by kind (a mesh's services together). */
    ProcessCpu plus(ProcessCpu o) {
        return new ProcessCpu(total + o.total, c2 + o.c2, c1 + o.c1, gc + o.gc, main + o.main, other + o.other);
    }

    static final ProcessCpu ZERO = new ProcessCpu(0, 0, 0, 0, 0, 0);
}
