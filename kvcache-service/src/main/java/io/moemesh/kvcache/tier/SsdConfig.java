package io.moemesh.kvcache.tier;

import java.nio.file.Path;
import java.time.Duration;

/**
 * Settings of one {@link SsdTier}.
 *
 * @param directory              where the segment files live; one directory per model and layout (segments of
 *                               another are refused at open)
 * @param capacityBytes          budget of live records (header + payload each); dead space awaiting compaction is
 *                               not counted, so the files may exceed it by up to the dead fraction
 * @param segmentBytes           a segment is sealed and a new one started when the next record would pass this
 *                               size (≥ 1 MiB is sensible; at least one record always fits)
 * @param fsync                  when records are forced to stable storage ({@link FsyncPolicy}; INTERVAL default)
 * @param fsyncInterval          INTERVAL: the longest time acknowledged records stay unforced (> 0)
 * @param fsyncIntervalBytes     INTERVAL: force once this many record bytes were appended since the last force (> 0)
 * @param compactionLiveFraction {@link SsdTier#compact()} rewrites sealed segments whose live bytes are below this
 *                               fraction of their records ([0, 1]; 0.5 default)
 * @param encoding               payload encoding of new segments ({@link PayloadEncoding#FLOAT32} default; INT8
 *                               is lossy and opt-in)
 */
public record SsdConfig(Path directory, long capacityBytes, long segmentBytes, FsyncPolicy fsync,
                        Duration fsyncInterval, long fsyncIntervalBytes, double compactionLiveFraction,
                        PayloadEncoding encoding) {
    public SsdConfig {
        if (directory == null) {
            throw new IllegalArgumentException("directory must be set");
        }
        if (capacityBytes <= 0) {
            throw new IllegalArgumentException("capacityBytes must be positive, got " + capacityBytes);
        }
        if (segmentBytes <= 0) {
            throw new IllegalArgumentException("segmentBytes must be positive, got " + segmentBytes);
        }
        if (fsync == null) {
            throw new IllegalArgumentException("fsync must be set (ALWAYS, INTERVAL or NEVER)");
        }
        if (fsyncInterval == null || fsyncInterval.isNegative() || fsyncInterval.isZero()) {
            throw new IllegalArgumentException("fsyncInterval must be positive, got " + fsyncInterval);
        }
        if (fsyncIntervalBytes <= 0) {
            throw new IllegalArgumentException("fsyncIntervalBytes must be positive, got " + fsyncIntervalBytes);
        }
        if (!(compactionLiveFraction >= 0 && compactionLiveFraction <= 1)) {
            throw new IllegalArgumentException("compactionLiveFraction must be in [0, 1], got "
                    + compactionLiveFraction);
        }
        if (encoding == null) {
            throw new IllegalArgumentException("encoding must be set (FLOAT32 or INT8)");
        }
    }

    /** Defaults: 256 MiB segments, INTERVAL fsync every 1 s or 64 MiB, compaction below half live, FLOAT32. */
    public static SsdConfig defaults(Path directory, long capacityBytes) {
        return new SsdConfig(directory, capacityBytes, 256L << 20, FsyncPolicy.INTERVAL, Duration.ofSeconds(1),
                64L << 20, 0.5, PayloadEncoding.FLOAT32);
    }

    public SsdConfig withFsync(FsyncPolicy policy) {
        return new SsdConfig(directory, capacityBytes, segmentBytes, policy, fsyncInterval, fsyncIntervalBytes,
                compactionLiveFraction, encoding);
    }

    public SsdConfig withSegmentBytes(long bytes) {
        return new SsdConfig(directory, capacityBytes, bytes, fsync, fsyncInterval, fsyncIntervalBytes,
                compactionLiveFraction, encoding);
    }

    public SsdConfig withEncoding(PayloadEncoding e) {
        return new SsdConfig(directory, capacityBytes, segmentBytes, fsync, fsyncInterval, fsyncIntervalBytes,
                compactionLiveFraction, e);
    }

    public SsdConfig withCompactionLiveFraction(double fraction) {
        return new SsdConfig(directory, capacityBytes, segmentBytes, fsync, fsyncInterval, fsyncIntervalBytes,
                fraction, encoding);
    }

    public SsdConfig withCapacityBytes(long bytes) {
        return new SsdConfig(directory, bytes, segmentBytes, fsync, fsyncInterval, fsyncIntervalBytes,
                compactionLiveFraction, encoding);
    }
}
