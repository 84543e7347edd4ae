package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.LruPolicy;
import java.nio.file.Path;

/**
 * The forked writer of {@link KillNineTest}: puts blocks 0, 1, 2, ... into an SSD tier (directory and fsync policy
 * from the arguments) and prints {@code durable <i>} after each put returns, until it is killed.
 */
public final class KillNineWriter {
    /** 4 layers, 4 KV heads, headDim 32, 16 tokens: 64 KiB blocks, so a kill often lands inside a write. */
    static final KvLayout LAYOUT = new KvLayout(4, 4, 32, 16);

    private KillNineWriter() {
    }

    static SsdConfig config(Path dir, FsyncPolicy fsync) {
        return SsdConfig.defaults(dir, 1L << 30).withFsync(fsync).withSegmentBytes(1 << 20);
    }

    public static void main(String[] args) {
        Path dir = Path.of(args[0]);
        SsdTier t = SsdTier.open(config(dir, FsyncPolicy.valueOf(args[1])), LAYOUT, TestBlocks.MODEL, new LruPolicy());
        for (long i = 0; ; i++) {
            t.put(TestBlocks.block(i, LAYOUT));
            System.out.println("durable " + i);
            System.out.flush();
        }
    }
}
