package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * When an {@link SsdTier} forces its active segment under its {@link FsyncPolicy}: after every record (ALWAYS),
 * after {@code fsyncIntervalBytes} or {@code fsyncInterval}, whichever comes first (INTERVAL, with the tier's timer
 * forcing what a quiet interval left), or never (NEVER: the OS decides). Not thread-safe: the tier's append lock
 * guards it.
 */
final class FsyncSchedule {
    private final SsdConfig config;
    private long bytesSinceSync;
    private long lastSyncNanos = System.nanoTime();

    FsyncSchedule(SsdConfig config) {
        this.config = config;
    }

    /** Counts a record of {@code stride} bytes appended to {@code seg}, and forces it if the policy says so. */
    void afterAppend(Segment seg, int stride) throws IOException {
        if (appended(stride)) {
            force(seg);
        }
    }

    /** Forces {@code seg} (the active segment, or null before the first) if records were appended since. */
    void forceIfDirty(Segment seg) throws IOException {
        if (seg != null && bytesSinceSync > 0) {
            force(seg);
        }
    }

    /** Counts an appended record of {@code stride} bytes; whether the policy wants the segment forced now. */
    private boolean appended(int stride) {
        bytesSinceSync += stride;
        return switch (config.fsync()) {
            case ALWAYS -> true;
            case INTERVAL -> bytesSinceSync >= config.fsyncIntervalBytes()
                    || System.nanoTime() - lastSyncNanos >= config.fsyncInterval().toNanos();
            case NEVER -> false;
        };
    }

    /** Forces the active segment {@code seg}: nothing appended is unsynced after it. */
    void force(Segment seg) throws IOException {
        seg.force();
        bytesSinceSync = 0;
        lastSyncNanos = System.nanoTime();
    }

    /**
     * Under INTERVAL, a daemon timer that runs {@code syncIfDirty} every {@code fsyncInterval} (a quiet interval's
     * records are forced too); null under the other policies.
     */
    ScheduledExecutorService startTimer(Runnable syncIfDirty) {
        if (config.fsync() != FsyncPolicy.INTERVAL) {
            return null;
        }
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "kvcache-ssd-fsync");
            t.setDaemon(true);
            return t;
        });
        long ms = config.fsyncInterval().toMillis();
        timer.scheduleWithFixedDelay(syncIfDirty, ms, ms, TimeUnit.MILLISECONDS);
        return timer;
    }

    /**
     * The segment being sealed was forced: its bytes are synced; the interval's clock is left running, so the
     * next segment's first force comes on the same schedule.
     */
    void sealedForced() {
        bytesSinceSync = 0;
    }

    /** Record bytes appended since the last force. */
    long unsyncedBytes() {
        return bytesSinceSync;
    }
}
