package io.moemesh.cli.bench;

import java.io.IOException;
import java.io.UncheckedIOException;

/** One line of {@code /proc/<pid>/stat} or {@code /proc/<pid>/task/<tid>/stat} (proc(5)), the fields the benches read. */
public final class ProcStat {
    /** USER_HZ: /proc's clock ticks per second (proc(5); 100 on every architecture the JDK runs on). */
    public static final double TICKS_PER_SECOND = 100;

    private ProcStat() {
    }

    /** The name: between the first '(' and the last ')' (it may itself hold spaces and parens). */
    public static String comm(String stat) {
        int open = stat.indexOf('(');
        int close = stat.lastIndexOf(')');
        if (open < 0 || close < open) {
            throw new UncheckedIOException(new IOException("not a /proc stat line: " + stat));
        }
        return stat.substring(open + 1, close);
    }

    /** utime + stime (fields 14 and 15), in clock ticks. */
    public static long ticks(String stat) {
        comm(stat); // validates the shape
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
        // f[0] is field 3 (state), so field n is f[n - 3]
        if (f.length < 13) {
            throw new UncheckedIOException(new IOException("a /proc stat line with " + f.length + " fields after the name"));
        }
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }
}
