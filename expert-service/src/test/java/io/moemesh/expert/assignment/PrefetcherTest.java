package io.moemesh.expert.assignment;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class PrefetcherTest {
    private static ExpertModel model;

    private record Fake(ExpertKey key, long byteSize) implements LoadedExpert {
    }

    private final ResidentSet resident = new ResidentSet(150, k -> new Fake(k, 100));
    private final AssignmentManager manager = new AssignmentManager(model, "expert-0", resident, Assignment.empty(),
            Duration.ofSeconds(10), System::nanoTime);

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void hints_areQueuedOnlyForAssignedNonResidentExperts_othersAreCounted() {
        // budget 150: only the first expert is resident after the assignment
        manager.load("expert-0", 2, List.of(new ExpertKey(0, 0), new ExpertKey(1, 1)));
        Prefetcher p = new Prefetcher(model, manager, resident, Runnable::run);
        PrefetchResult r = p.prefetch(2, new int[][] {{0, 0}, {1, 1}, {1, 2}, {9, 0}, {0, 99}});
        assertThat(r).isEqualTo(new PrefetchResult(1, 1, 3));
        assertThat(resident.isResident(new ExpertKey(1, 1))).isTrue();
        assertThat(resident.hits() + resident.misses()).as("hints are not lookups").isZero();
    }

    @Test
    void hintsUnderAnEpochNotServed_areIgnored() {
        manager.load("expert-0", 2, List.of(new ExpertKey(0, 0)));
        Prefetcher p = new Prefetcher(model, manager, resident, Runnable::run);
        assertThat(p.prefetch(1, new int[][] {{0, 0}})).isEqualTo(new PrefetchResult(0, 0, 1));
        assertThat(p.prefetch(3, new int[][] {{0, 0}})).isEqualTo(new PrefetchResult(0, 0, 1));
    }

    @Test
    void hintsUnderAPreparedEpoch_areQueuedForItsExperts() {
        manager.load("expert-0", 2, List.of(new ExpertKey(0, 0)));
        manager.prepare("expert-0", 3, List.of(new ExpertKey(0, 1)));
        Prefetcher p = new Prefetcher(model, manager, resident, Runnable::run);
        assertThat(p.prefetch(3, new int[][] {{0, 1}, {0, 0}})).as("(0, 0) is epoch 2's only")
                .isEqualTo(new PrefetchResult(0, 1, 1));
        manager.abort("expert-0", 3);
        assertThat(p.prefetch(3, new int[][] {{0, 1}})).isEqualTo(new PrefetchResult(0, 0, 1));
    }

    @Test
    void hintsBeyondTheLoaderQueue_areIgnored_notBuffered() {
        manager.load("expert-0", 1, List.of(new ExpertKey(0, 3), new ExpertKey(0, 4))); // only (0, 3) fits
        Prefetcher p = new Prefetcher(model, manager, resident, r -> {
            throw new RejectedExecutionException("full");
        });
        assertThat(p.prefetch(0, new int[][] {{0, 4}})).isEqualTo(new PrefetchResult(0, 0, 1));
    }
}
