package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.mesh.MeshLauncher;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The restored phase of {@code bench kvcache-ttft} on a fake mesh that keeps what a real one does to the page cache:
 * a kvcache-service reads every segment while it starts (its index scan, before SERVING), the warm-up's restores read
 * their blocks, a drop empties the cache. The measured restores must find the segments on disk only.
 */
class KvTtftRestartTest {

    /** The mesh's services and which segment files are in the page cache. */
    private static final class FakeMesh implements KvTtftRestart.Steps {
        final Set<String> serving = new HashSet<>(Set.of(MeshLauncher.GATEWAY, MeshLauncher.KVCACHE));
        final Set<String> cachedSegments = new HashSet<>(Set.of("seg-1", "seg-2")); // written in the first phase
        final List<String> restarted = new ArrayList<>();
        Set<String> cachedAtMeasure;

        @Override
        public void stop(String service) {
            serving.remove(service);
        }

        @Override
        public void restart(List<String> services) {
            restarted.addAll(services);
            if (services.contains(MeshLauncher.KVCACHE)) {
                // SegmentScan reads and CRC-checks every record before the service reports SERVING.
                cachedSegments.addAll(Set.of("seg-1", "seg-2"));
            }
            serving.addAll(services);
        }

        @Override
        public void warmUp() {
            assertThat(serving).as("warm-up on a serving mesh").contains(MeshLauncher.GATEWAY, MeshLauncher.KVCACHE);
            cachedSegments.add("seg-1"); // the warm-up prompts' blocks
        }

        @Override
        public PageCache.Method dropPageCache() {
            cachedSegments.clear();
            return PageCache.Method.FADVISE;
        }

        @Override
        public void measure() {
            assertThat(serving).contains(MeshLauncher.GATEWAY, MeshLauncher.KVCACHE);
            cachedAtMeasure = Set.copyOf(cachedSegments);
        }
    }

    @Test
    void coldService_pageCacheDroppedAfterTheRestartedServiceServes_measuredRestoresFindNoSegmentCached()
            throws Exception {
        FakeMesh mesh = new FakeMesh();
        StringWriter log = new StringWriter();

        String cacheState = KvTtftRestart.run(mesh, false, new PrintWriter(log));

        assertThat(mesh.restarted).containsExactly(MeshLauncher.GATEWAY, MeshLauncher.KVCACHE);
        assertThat(mesh.cachedAtMeasure).isEmpty();
        assertThat(cacheState).isEqualTo("kvcache-service restarted; once it was SERVING and the fresh gateway "
                + "warmed up, " + PageCache.Method.FADVISE.description());
        assertThat(log.toString()).contains(cacheState);
    }

    @Test
    void warmService_keepsTheServiceAndItsPageCache() throws Exception {
        FakeMesh mesh = new FakeMesh();

        String cacheState = KvTtftRestart.run(mesh, true, new PrintWriter(new StringWriter()));

        assertThat(mesh.restarted).containsExactly(MeshLauncher.GATEWAY);
        assertThat(mesh.cachedAtMeasure).containsExactlyInAnyOrder("seg-1", "seg-2");
        assertThat(cacheState).isEqualTo("kvcache-service kept running (DRAM and page cache warm)");
    }
}
