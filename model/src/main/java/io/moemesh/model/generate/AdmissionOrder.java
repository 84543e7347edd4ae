package io.moemesh.model.generate;

import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** Which waiting sequence {@link StepScheduler} admits next. */
final class AdmissionOrder {
    private AdmissionOrder() {
    }

    /**
     * FCFS with per-tenant fairness: a preempted sequence resumes first (it went back to the head of the queue, as
     * vLLM re-queues preempted requests at the front), with tokens or still in its prompt; otherwise the oldest
     * waiting request of the tenant with the fewest running sequences, so one tenant's burst cannot starve the
     * others. Sequences in {@code skip} (still loading) are passed over; null when every waiting one is.
     *
     * @param waiting in queue order, its head first
     */
    static SequenceState next(Collection<SequenceState> waiting, Collection<SequenceState> running,
                              Set<SequenceState> skip) {
        SequenceState head = null;
        for (SequenceState w : waiting) {
            if (skip == null || !skip.contains(w)) {
                head = w;
                break;
            }
        }
        if (head == null) {
            return null;
        }
        if (head.admittedBefore()) {
            return head;
        }
        Map<String, Integer> share = new HashMap<>();
        for (SequenceState r : running) {
            share.merge(r.tenant, 1, Integer::sum);
        }
        SequenceState best = head;
        int bestShare = share.getOrDefault(head.tenant, 0);
        for (SequenceState w : waiting) {
            if (skip != null && skip.contains(w)) {
                continue;
            }
            int sh = share.getOrDefault(w.tenant, 0);
            if (sh < bestShare) {
                best = w;
                bestShare = sh;
            }
        }
        return best;
    }
}
