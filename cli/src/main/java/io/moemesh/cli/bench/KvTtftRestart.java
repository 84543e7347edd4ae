package io.moemesh.cli.bench;

import io.moemesh.cli.mesh.MeshLauncher;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * The second phase of {@code bench kvcache-ttft}, in the order that makes its restores read the SSD: the first
 * gateway stopped (draining its write-backs), unless {@code --warm-service} the kvcache-service too, both started
 * again, the fresh gateway warmed up, and only then the page cache dropped, right before the measured prompts.
 *
 * <p>Why not earlier: a restarting kvcache-service rebuilds its index by reading and CRC-checking every record of
 * every segment before it reports SERVING ({@code SegmentScan}), which brings all of them back into the page cache,
 * and the warm-up's restores read their own blocks (and, by read-ahead, their neighbours). Dropped before the
 * restart, as the bench did until 2026-12-07, the measured restores read the segments from memory.
 */
final class KvTtftRestart {

    /** What the phase does; the bench's are the mesh's processes, a test's a fake. */
    interface Steps {
        /** Stops the service (SIGTERM) and waits for its exit. */
        void stop(String service) throws Exception;

        /** Starts the services again, at once; returns when every one of them reports SERVING. */
        void restart(List<String> services) throws Exception;

        /** The fresh gateway's unmeasured prompts. */
        void warmUp() throws Exception;

        /** Evicts the kvcache-service's segment files from the page cache, by the strongest method allowed. */
        PageCache.Method dropPageCache() throws Exception;

        /** The measured prompts, restored from the service. */
        void measure() throws Exception;
    }

    private KvTtftRestart() {
    }

    /** Runs the phase; returns where the restored blocks came from, as the report prints it. */
    static String run(Steps steps, boolean warmService, PrintWriter err) throws Exception {
        List<String> restart = new ArrayList<>(List.of(MeshLauncher.GATEWAY));
        steps.stop(MeshLauncher.GATEWAY);
        if (!warmService) {
            steps.stop(MeshLauncher.KVCACHE);
            restart.add(MeshLauncher.KVCACHE);
        }
        log(err, "bench: starting " + String.join(" and ", restart) + " again");
        steps.restart(restart);
        steps.warmUp();
        String cacheState = warmService ? "kvcache-service kept running (DRAM and page cache warm)"
                : "kvcache-service restarted; once it was SERVING and the fresh gateway warmed up, "
                        + steps.dropPageCache().description();
        log(err, "bench: " + cacheState + "; measuring the restores");
        steps.measure();
        return cacheState;
    }

    private static void log(PrintWriter err, String line) {
        err.println(line);
        err.flush();
    }
}
