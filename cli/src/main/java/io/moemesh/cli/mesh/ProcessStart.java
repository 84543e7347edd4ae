package io.moemesh.cli.mesh;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * When a process started, as {@code mesh.json} records it for each service: what tells the process {@code up} (or the
 * supervisor) started from a later one that got the same pid, so {@code down} never signals a stranger and the
 * supervisor never takes its own service for dead.
 *
 * <p>On Linux the key is the process's {@code starttime} (field 22 of {@code /proc/<pid>/stat}, proc(5): clock ticks
 * since boot) together with the boot's id ({@code /proc/sys/kernel/random/boot_id}, random(4)), which a reboot
 * changes. Neither depends on the wall clock. The JDK's {@link ProcessHandle.Info#startInstant} does: it adds those
 * ticks to the boot time each JVM reads once from {@code /proc/stat}'s {@code btime}, which the kernel derives from the
 * current wall clock; after a clock step (NTP, chrony, a resumed VM, {@code date -s}) the JVM that checks an entry
 * and the one that recorded it disagree by the step, and an exact comparison of instants took every service for gone:
 * {@code down} stopped none of them, the supervisor started a second copy of each. Elsewhere, and for entries written
 * before the key was recorded ({@code bootId} null), the instant is compared as before.
 *
 * @param instant the start instant as the JDK reports it ({@code startedAt} in mesh.json: for people, and the
 *                fallback); empty when unknown
 * @param bootId  the boot the process started in; null off Linux or when {@code /proc} could not be read
 * @param ticks   its start in clock ticks since that boot; 0 with no boot id
 */
record ProcessStart(String instant, String bootId, long ticks) {
    /** Reads the start of a live process: {@link #SYSTEM}, or (tests) one whose clock or boot can be moved. */
    @FunctionalInterface
    interface Source {
        ProcessStart of(ProcessHandle p);
    }

    private static final Path BOOT_ID = Path.of("/proc/sys/kernel/random/boot_id");
    /** Read once: a boot id cannot change while this JVM runs. Null when there is none to read (not Linux). */
    private static final String THIS_BOOT = readBootId();
    /** {@code starttime} is the 22nd field of {@code /proc/<pid>/stat}, the 20th after {@code (comm)}. */
    private static final int STARTTIME_AFTER_COMM = 19;

    /** This host's processes: {@code /proc} on Linux, the JDK's instant elsewhere. */
    static final Source SYSTEM = ProcessStart::read;

    ProcessStart {
        instant = instant == null ? "" : instant;
        if (bootId == null) {
            ticks = 0;
        }
    }

    /** {@code p}'s start as this host tells it (the process may have exited meanwhile: then no boot id). */
    static ProcessStart read(ProcessHandle p) {
        String instant = p.info().startInstant().map(Object::toString).orElse("");
        if (THIS_BOOT == null) {
            return new ProcessStart(instant, null, 0);
        }
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(p.pid()), "stat"), StandardCharsets.UTF_8);
            // comm, in parentheses, may hold spaces and parentheses itself: the fields start after the last ')'
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).strip().split(" ");
            return new ProcessStart(instant, THIS_BOOT, Long.parseLong(fields[STARTTIME_AFTER_COMM]));
        } catch (IOException | RuntimeException e) {
            return new ProcessStart(instant, null, 0); // gone meanwhile, or no /proc to read
        }
    }

    /**
     * Whether this (a live process's start) is the start {@code recorded}: the same boot and tick when both have a
     * boot id, else the same instant.
     */
    boolean sameAs(ProcessStart recorded) {
        if (bootId != null && recorded.bootId() != null) {
            return bootId.equals(recorded.bootId()) && ticks == recorded.ticks();
        }
        return instant.equals(recorded.instant());
    }

    /** One word naming this start (a marker file's): {@code <boot id>:<ticks>}, or the instant. */
    String tag() {
        return bootId != null ? bootId + ":" + ticks : instant;
    }

    private static String readBootId() {
        try {
            String id = Files.readString(BOOT_ID, StandardCharsets.US_ASCII).strip();
            return id.isEmpty() ? null : id;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
