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
        assertThat(registry.awaitApplied(3, () -> 7, Duration.ZERO, () -> false)).isEmpty();
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

    /**
     * A gateway at epoch 57, from a router before this one, ignores this router's epoch 2 (not newer than its own):
     * it has not applied it, however high its epoch.
     */
    @Test
    void aWatcherAtAnEpochAboveWhatThisRouterPublished_hasNotAppliedALowerOne() throws Exception {
        registry.opened("gw-0");
        registry.opened("gw-1");
        registry.reportApplied("gw-0", 57);
        registry.reportApplied("gw-1", 3);
        assertThat(registry.awaitApplied(2, () -> 3, Duration.ZERO, () -> false)).containsExactly("gw-0");
        // The latest report counts: restarted from an older placement file, it dispatches under that one.
        registry.reportApplied("gw-1", 1);
        assertThat(registry.watchers()).containsEntry("gw-1", 1L);
    }
}
