package io.moemesh.cli.bench.mesh;

import io.moemesh.cli.bench.ProcStat;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * CPU time and thread wake-ups of some processes, per thread, from Linux's {@code /proc/<pid>/task/<tid>/stat}
 * (utime + stime, proc(5) fields 14 and 15, in USER_HZ = 100 ticks a second) and {@code .../status}
 * ({@code voluntary_ctxt_switches}: how often the thread blocked, i.e. parked and was woken again). A snapshot
 * taken before and after a run gives what each process and each kind of thread spent on it ({@link #minus}); a
 * thread's kind is its name with digits replaced by {@code #} (so {@code expert-compute-1} and {@code -2} add up).
 * Why CPU and not wall time: on a machine shared with other work, CPU seconds per token hardly depend on what
 * else runs, wall-clock throughput does. Off Linux every snapshot is empty.
 *
 * @param threads per "service/tid": the service's name, the thread's kind, CPU ticks, voluntary switches
 */
record ThreadCpu(Map<String, Thread> threads) {
    /** USER_HZ: /proc's clock ticks per second (proc(5); 100 on every architecture the JDK runs on). */
    static final double TICKS_PER_SECOND = ProcStat.TICKS_PER_SECOND;

    /** One thread's counters. */
    record Thread(String service, String kind, long ticks, long wakeUps) {
    }

    /** What one service's thread kind spent between two snapshots. */
    record Use(String service, String kind, double cpuSeconds, long wakeUps) {
    }

    /** The threads of {@code pids} (service name → pid) now; a process that exited contributes nothing. */
    static ThreadCpu of(Map<String, Long> pids) {
        Map<String, Thread> threads = new HashMap<>();
        for (var p : pids.entrySet()) {
            Path tasks = Path.of("/proc", Long.toString(p.getValue()), "task");
            try (DirectoryStream<Path> dir = Files.newDirectoryStream(tasks)) {
                for (Path task : dir) {
                    try {
                        String stat = Files.readString(task.resolve("stat"));
                        String status = Files.readString(task.resolve("status"));
                        threads.put(p.getKey() + "/" + task.getFileName(), new Thread(p.getKey(),
                                kind(comm(stat)), ticks(stat), field(status, "voluntary_ctxt_switches:")));
                    } catch (IOException | RuntimeException e) {
                        // The thread exited while listed: what it used before is lost (it is short-lived work).
                    }
                }
            } catch (IOException e) {
                // Not Linux, or the process exited: nothing to count.
            }
        }
        return new ThreadCpu(Map.copyOf(threads));
    }

    /** Per service and thread kind, what {@code this} (later) has beyond {@code before}; sorted by service, kind. */
    List<Use> minus(ThreadCpu before) {
        Map<String, long[]> sums = new TreeMap<>();
        for (var e : threads.entrySet()) {
            Thread now = e.getValue();
            Thread then = before.threads.get(e.getKey());
            long[] s = sums.computeIfAbsent(now.service() + "\u0000" + now.kind(), k -> new long[2]);
            s[0] += now.ticks() - (then == null ? 0 : then.ticks());
            s[1] += now.wakeUps() - (then == null ? 0 : then.wakeUps());
        }
        return sums.entrySet().stream().map(e -> {
            String[] sk = e.getKey().split("\u0000", 2);
            return new Use(sk[0], sk[1], e.getValue()[0] / TICKS_PER_SECOND, e.getValue()[1]);
        }).toList();
    }

    /** Per service and thread kind, the sum of several intervals' uses (e.g. measured rounds); sorted likewise. */
    static List<Use> sum(List<List<Use>> intervals) {
        Map<String, Use> sums = new TreeMap<>();
        for (List<Use> uses : intervals) {
            for (Use u : uses) {
                sums.merge(u.service() + "\u0000" + u.kind(), u, (a, b) -> new Use(a.service(), a.kind(),
                        a.cpuSeconds() + b.cpuSeconds(), a.wakeUps() + b.wakeUps()));
            }
        }
        return List.copyOf(sums.values());
    }

    /** CPU seconds of all of {@code uses}. */
    static double total(List<Use> uses) {
        return uses.stream().mapToDouble(Use::cpuSeconds).sum();
    }

    /** A thread's kind: its name with every digit replaced by {@code #}. */
    static String kind(String comm) {
        return comm.replaceAll("[0-9]", "#");
    }

    /** The name in a stat line ({@link ProcStat#comm}). */
    static String comm(String stat) {
        return ProcStat.comm(stat);
    }

    /** utime + stime of a stat line ({@link ProcStat#ticks}). */
    static long ticks(String stat) {
        return ProcStat.ticks(stat);
    }

    /** A numeric field of a status file ("name:\tvalue"), 0 when absent. */
    static long field(String status, String name) {
        for (String line : status.split("\n")) {
            if (line.startsWith(name)) {
                return Long.parseLong(line.substring(name.length()).trim());
            }
        }
        return 0;
    }
}
