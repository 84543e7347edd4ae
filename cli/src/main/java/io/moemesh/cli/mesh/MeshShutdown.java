package io.moemesh.cli.mesh;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Stopping a recorded mesh's processes: the supervisor first, then the services in the order that keeps KV blocks. */
final class MeshShutdown {
    private MeshShutdown() {
    }

    /**
     * Stops the services of a mesh in the order that keeps KV blocks: the gateway first (SIGTERM; it drains its
     * queued write-backs to the kvcache-service while it shuts down), then the kvcache-service (SIGTERM; it finishes
     * in-flight calls, demotes DRAM to SSD and forces its segments, given at least
     * {@link KvCacheSettings#STOP_GRACE}),
     * then the others together. Each stage waits until its processes exited (SIGKILL after the grace).
     */
    static void stopServices(MeshState state, Duration grace) {
        List<ProcessHandle> first = new ArrayList<>();
        List<ProcessHandle> second = new ArrayList<>();
        List<ProcessHandle> rest = new ArrayList<>();
        for (MeshState.Service s : state.services()) {
            Optional<ProcessHandle> p = s.process();
            if (p.isEmpty()) {
                continue;
            }
            (s.name().equals(MeshLauncher.GATEWAY) ? first : s.name().equals(MeshLauncher.KVCACHE) ? second : rest).add(p.get());
        }
        ServiceProcess.stop(first, grace);
        ServiceProcess.stop(second, grace.compareTo(KvCacheSettings.STOP_GRACE) > 0 ? grace : KvCacheSettings.STOP_GRACE);
        ServiceProcess.stop(rest, grace);
    }

    /** SIGTERM to the mesh's supervisor, if one runs; true when there was one. */
    static boolean stopSupervisor(MeshState state, Duration grace) {
        if (state.supervisor() == null) {
            return false;
        }
        Optional<ProcessHandle> p = state.supervisor().process();
        p.ifPresent(h -> ServiceProcess.stop(List.of(h), grace.compareTo(Duration.ofSeconds(15)) < 0 ? grace
                : Duration.ofSeconds(15)));
        return p.isPresent();
    }
}
