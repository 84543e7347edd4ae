package io.moemesh.model.generate;

import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.engine.StepOutput;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * {@link StepScheduler}'s engine step when some sequences' remote attention fails: a {@link RemoteAttentionException}
 * that names sequences of the step ({@link RemoteAttentionException#sequences}: the attention over their remote
 * prefixes failed, the others' was fine or not needed) ends those alone, with it, and the step runs again without
 * them. A failed step completes nothing (the cache is not told, no token is drawn), so the others' rows are just
 * computed once more, in a smaller batch; before, one long sequence's failed Attend ended every request batched
 * with it, each told that its own offloaded prefix could not be attended.
 */
final class FailedRemotes {
    private FailedRemotes() {
    }

    /**
     * The engine's step over {@code batch} ({@code batch.get(i)} is {@code members.get(i)}'s rows), which loses the
     * sequences ended on the way (each given to {@code end} with the failure; a listener that throws loses only its
     * own). A failure naming every sequence of the step, or none, and any other failure, is thrown: the caller ends
     * every sequence of the step.
     */
    static List<StepOutput> step(Engine engine, KvCache cache, List<SequenceStep> batch, List<SequenceState> members,
                                 BiConsumer<SequenceState, RuntimeException> end) {
        while (true) {
            try {
                return engine.step(StepContext.of(batch), cache);
            } catch (RemoteAttentionException e) {
                List<SequenceState> failed = new ArrayList<>();
                for (SequenceState s : members) {
                    if (e.sequences().contains(s.id)) {
                        failed.add(s);
                    }
                }
                if (failed.isEmpty() || failed.size() == members.size()) {
                    throw e;
                }
                for (SequenceState s : failed) {
                    int at = members.indexOf(s);
                    members.remove(at);
                    batch.remove(at);
                    try {
                        end.accept(s, e);
                    } catch (RuntimeException listenerFailed) {
                        // A listener that throws loses its sequence (ended first), never the step's others.
                    }
                }
            }
        }
    }
}
