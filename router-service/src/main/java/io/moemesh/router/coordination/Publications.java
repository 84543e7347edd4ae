package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Placement;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Who {@link PlacementCoordinator} tells of its epochs: the watches (WatchPlacement streams), the listeners of
 * publications, of COMMITs and of epochs seen elsewhere above the current one. Any thread registers; the replan
 * thread tells.
 */
final class Publications {
    private static final Logger log = LoggerFactory.getLogger(PlacementCoordinator.class);

    private final List<PlacementWatch> watches = new CopyOnWriteArrayList<>();
    private final List<Consumer<ReplanOutcome>> published = new CopyOnWriteArrayList<>();
    private final List<CommitListener> committed = new CopyOnWriteArrayList<>();
    private final List<Runnable> behind = new CopyOnWriteArrayList<>();

    void onPublished(Consumer<ReplanOutcome> listener) {
        published.add(listener);
    }

    void onCommitted(CommitListener listener) {
        committed.add(listener);
    }

    void onBehind(Runnable listener) {
        behind.add(listener);
    }

    /** A new watch, offered {@code current} (null: none yet) at once; the result closes it. */
    AutoCloseable watch(long knownEpoch, Consumer<Placement> watcher, Placement current) {
        PlacementWatch w = new PlacementWatch(watcher, knownEpoch);
        watches.add(w);
        if (current != null) {
            w.offer(current);
        }
        return () -> watches.remove(w);
    }

    int watchCount() {
        return watches.size();
    }

    /** Every watch first (the gateways switch), then the listeners. */
    void published(ReplanOutcome outcome) {
        for (PlacementWatch w : watches) {
            w.offer(outcome.placement());
        }
        for (Consumer<ReplanOutcome> l : published) {
            l.accept(outcome);
        }
    }

    /** A listener that fails is logged; the others are told all the same. */
    void committed(Placement p, List<String> ids, Map<String, Integer> restarts) {
        for (CommitListener l : committed) {
            try {
                l.committed(p, ids, restarts);
            } catch (RuntimeException e) {
                log.error("a listener of committed epoch {} failed", p.getEpoch(), e);
            }
        }
    }

    void behind() {
        behind.forEach(Runnable::run);
    }
}
