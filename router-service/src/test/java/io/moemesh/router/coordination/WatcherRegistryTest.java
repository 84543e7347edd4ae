package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

class WatcherRegistryTest {
    final WatcherRegistry registry = new WatcherRegistry();

    @Test
    void reportersWithoutAnOpenWatch_areBounded_leastRecentlyReportingDroppedFirst() throws Exception {
        registry.opened("gw-watching");
        registry.reportApplied("gw-watching", 7);
        registry.reportApplied("gw-recent", 3);
        // Every rollout brings gateways with new names; the old ones never report again.
        for (int i = 0; i < 5 * WatcherRegistry.MAX_UNWATCHED_SOURCES; i++) {
            registry.reportApplied("gw-" + i, 1);
            if (i % 100 == 0) {
                registry.reportApplied("gw-recent", 3);
            }
        }
        assertThat(registry.sourcesKept()).isEqualTo(WatcherRegistry.MAX_UNWATCHED_SOURCES + 1);
        // An open watcher's epoch is never dropped, and a source that keeps reporting is kept.
        assertThat(registry.watchers()).isEqualTo(Map.of("gw-watching", 7L));
        registry.opened("gw-recent");
        assertThat(registry.watchers()).containsEntry("gw-recent", 3L);
        assertThat(registry.awaitApplied(3, Duration.ZERO, () -> false)).isEmpty();
    }

    @Test
    void aWatcherThatCloses_becomesAnUnwatchedReporter_withinTheSameBound() {
        for (int i = 0; i < WatcherRegistry.MAX_UNWATCHED_SOURCES + 10; i++) {
            registry.opened("gw-" + i);
            registry.reportApplied("gw-" + i, 2);
        }
        assertThat(registry.sourcesKept()).isEqualTo(WatcherRegistry.MAX_UNWATCHED_SOURCES + 10);
        for (int i = 0; i < WatcherRegistry.MAX_UNWATCHED_SOURCES + 10; i++) {
            registry.closed("gw-" + i);
        }
        assertThat(registry.sourcesKept()).isEqualTo(WatcherRegistry.MAX_UNWATCHED_SOURCES);
        assertThat(registry.watchers()).isEmpty();
    }
}
