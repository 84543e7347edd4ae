package io.moemesh.expert.assignment;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prefetch hints: make assigned experts resident ahead of use, asynchronously. A hint is advice, so nothing
 * about it is an error: hints for unknown or unassigned experts, under an epoch not served, or beyond the
 * loader's queue are counted as ignored.
 */
public final class Prefetcher {
    private static final Logger log = LoggerFactory.getLogger(Prefetcher.class);

    private final ExpertModel model;
    private final AssignmentManager assignments;
    private final ResidentSet resident;
    private final Executor loader;

    /** @param loader runs the loads; a bounded executor that rejects when full */
    public Prefetcher(ExpertModel model, AssignmentManager assignments, ResidentSet resident, Executor loader) {
        this.model = model;
        this.assignments = assignments;
        this.resident = resident;
        this.loader = loader;
    }

    /** @param layerExpert pairs (layer, expert), most urgent first */
    public PrefetchResult prefetch(long epoch, int[][] layerExpert) {
        AssignmentManager.Held held;
        try {
            held = assignments.heldFor(epoch);
        } catch (EpochNotServedException e) {
            return new PrefetchResult(0, 0, layerExpert.length);
        }
        int queued = 0;
        int already = 0;
        int ignored = 0;
        for (int[] le : layerExpert) {
            ExpertKey key;
            try {
                key = model.key(le[0], le[1]);
            } catch (IllegalArgumentException e) {
                ignored++;
                continue;
            }
            if (!held.test(key)) {
                ignored++;
            } else if (resident.isResident(key)) {
                already++;
            } else {
                try {
                    loader.execute(() -> load(key));
                    queued++;
                } catch (RejectedExecutionException e) {
                    ignored++;
                }
            }
        }
        return new PrefetchResult(queued, already, ignored);
    }

    private void load(ExpertKey key) {
        try {
            resident.prefetch(key);
        } catch (RuntimeException e) {
            log.warn("prefetch of {} failed: {}", key, e.toString());
        }
    }
}
