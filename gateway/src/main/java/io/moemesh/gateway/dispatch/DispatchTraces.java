package io.moemesh.gateway.dispatch;

import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Per traced sequence, where each of its prompt rows went at each layer: the data of a trace's {@code dispatch}
 * (gateway.proto: this request's prompt rows only, all prefill chunks together). The expert dispatch
 * {@link #record records} the rows of a step that belong to a traced prompt pass (the step context says which:
 * {@link SequenceStep#traceRoutes()} in the PREFILL phase; other rows cost one flag check per sequence of the
 * step); the request {@link #take takes} its record when it completes, or {@link #discard discards} it when it
 * fails or is cancelled.
 *
 * <p>Rows are kept by position, so a prompt that is preempted during its prefill and recomputed counts each
 * position once: the recomputed row replaces the first (its expert work is the one whose result the sequence
 * kept). Records are bounded: at most {@code capacity} sequences are held, and past that the oldest record is
 * dropped ({@link #evicted()}), so nothing leaks even if a sequence never reports back. Each record holds
 * layers × prompt positions × pairs ints, the size of the trace's own {@code router_topk}, and the ids of the
 * instances it names; ids live only in the records that name them, so pod names that change with every rollout
 * leave nothing behind once their records are taken, discarded or dropped.
 *
 * <p>Thread-safe: the engine thread records, takes and discards; a request that ends before its submitter learnt
 * its sequence id is discarded from the submitting thread.
 */
public final class DispatchTraces {
    private final int layers;
    private final int capacity;
    /** Insertion order: the eldest record is dropped first. */
    private final LinkedHashMap<Long, Trace> bySequence = new LinkedHashMap<>();
    private long rerecorded;
    private long evicted;

    private static final class Trace {
        long epoch;
        /** [layer][position]: (instance, expert) pairs of that row, alternating; null until recorded. */
        final int[][][] rows;
        /** The ids of the instances this record names, interned: {@link #rows} store the index. */
        final List<String> ids = new ArrayList<>();
        private final Map<String, Integer> index = new HashMap<>();

        Trace(int layers) {
            rows = new int[layers][][];
        }

        int intern(String id) {
            Integer i = index.get(id);
            if (i == null) {
                i = ids.size();
                ids.add(id);
                index.put(id, i);
            }
            return i;
        }
    }

    /**
     * @param layers   decoder layers of the model
     * @param capacity traced sequences held at most (the oldest record is dropped beyond); ≥ 1
     */
    public DispatchTraces(int layers, int capacity) {
        if (layers < 1 || capacity < 1) {
            throw new IllegalArgumentException("layers and capacity must be ≥ 1, got " + layers + " and " + capacity);
        }
        this.layers = layers;
        this.capacity = capacity;
    }

    /** Whether any row of the step belongs to a traced prompt pass (what untraced steps pay: this loop). */
    public static boolean tracesAny(StepContext step) {
        for (SequenceStep s : step.sequences()) {
            if (s.traceRoutes() && s.phase() == SequenceStep.Phase.PREFILL) {
                return true;
            }
        }
        return false;
    }

    /**
     * Records, for each row of a traced prompt pass in {@code step}, the instance each of its pairs was computed
     * on at {@code layer}.
     *
     * @param experts     [rows × pairsPerToken] the pairs' experts, row-major (as {@code ExpertDispatch.run} got them)
     * @param target      [rows × pairsPerToken] index into {@code instanceIds} of the instance that computed each pair
     * @param instanceIds the ids of the instances {@code target} indexes
     * @param epoch       the placement epoch the pairs were dispatched under
     */
    public void record(StepContext step, int layer, int[] experts, int pairsPerToken, int[] target,
                       List<String> instanceIds, long epoch) {
        if (!tracesAny(step)) {
            return;
        }
        synchronized (this) {
            int row = 0;
            for (SequenceStep s : step.sequences()) {
                int n = s.tokens().length;
                if (s.traceRoutes() && s.phase() == SequenceStep.Phase.PREFILL) {
                    Trace t = traceOf(s.seqId());
                    t.epoch = epoch;
                    // target index → this record's index, looked up once per instance the rows use.
                    int[] interned = new int[instanceIds.size()];
                    Arrays.fill(interned, -1);
                    for (int r = row; r < row + n; r++) {
                        int[] pairs = new int[2 * pairsPerToken];
                        for (int j = 0; j < pairsPerToken; j++) {
                            int inst = target[r * pairsPerToken + j];
                            if (interned[inst] < 0) {
                                interned[inst] = t.intern(instanceIds.get(inst));
                            }
                            pairs[2 * j] = interned[inst];
                            pairs[2 * j + 1] = experts[r * pairsPerToken + j];
                        }
                        put(t, layer, step.position(r), pairs);
                    }
                }
                row += n;
            }
        }
    }

    /**
     * Removes and returns where the sequence's prompt rows went; {@link PromptDispatch#NONE} when nothing was
     * recorded for it (untraced, or dropped past the capacity).
     */
    public synchronized PromptDispatch take(long seqId) {
        Trace t = bySequence.remove(seqId);
        if (t == null) {
            return PromptDispatch.NONE;
        }
        List<LayerDispatchRecord> out = new ArrayList<>();
        for (int layer = 0; layer < layers; layer++) {
            int[][] byPosition = t.rows[layer];
            if (byPosition == null) {
                continue;
            }
            // Ascending by instance id, as gateway.proto promises.
            TreeMap<String, int[]> rows = new TreeMap<>();
            TreeMap<String, TreeSet<Integer>> experts = new TreeMap<>();
            for (int[] pairs : byPosition) {
                if (pairs == null) {
                    continue;
                }
                for (int j = 0; j < pairs.length; j += 2) {
                    String id = t.ids.get(pairs[j]);
                    experts.computeIfAbsent(id, k -> new TreeSet<>()).add(pairs[j + 1]);
                    boolean earlier = false;
                    for (int k = 0; k < j; k += 2) {
                        earlier |= pairs[k] == pairs[j];
                    }
                    if (!earlier) {
                        rows.computeIfAbsent(id, k -> new int[1])[0]++;
                    }
                }
            }
            List<LayerDispatchRecord.InstanceShare> shares = new ArrayList<>();
            rows.forEach((id, count) -> shares.add(new LayerDispatchRecord.InstanceShare(id, count[0],
                    Collections.unmodifiableSortedSet(experts.get(id)))));
            if (!shares.isEmpty()) {
                out.add(new LayerDispatchRecord(layer, shares));
            }
        }
        return new PromptDispatch(t.epoch, out);
    }

    /** Forgets the sequence's record (the request failed or was cancelled); nothing when there is none. */
    public synchronized void discard(long seqId) {
        bySequence.remove(seqId);
    }

    /** Sequences whose record is held now. */
    public synchronized int held() {
        return bySequence.size();
    }

    /**
     * (row, layer) records that replaced an earlier record of the same position: a prompt recomputed after a
     * preemption during its prefill.
     */
    public synchronized long rerecorded() {
        return rerecorded;
    }

    /** Instance ids the held records keep, each counted once per record that names it. */
    synchronized int instanceIdsHeld() {
        int n = 0;
        for (Trace t : bySequence.values()) {
            n += t.ids.size();
        }
        return n;
    }

    /** Records dropped because {@code capacity} sequences were held. */
    public synchronized long evicted() {
        return evicted;
    }

    private Trace traceOf(long seqId) {
        Trace t = bySequence.get(seqId);
        if (t == null) {
            if (bySequence.size() >= capacity) {
                Iterator<Long> eldest = bySequence.keySet().iterator();
                eldest.next();
                eldest.remove();
                evicted++;
            }
            t = new Trace(layers);
            bySequence.put(seqId, t);
        }
        return t;
    }

    private void put(Trace t, int layer, int position, int[] pairs) {
        int[][] byPosition = t.rows[layer];
        if (byPosition == null || byPosition.length <= position) {
            int size = Math.max(position + 1, byPosition == null ? 16 : byPosition.length * 2);
            byPosition = byPosition == null ? new int[size][] : Arrays.copyOf(byPosition, size);
            t.rows[layer] = byPosition;
        }
        if (byPosition[position] != null) {
            rerecorded++;
        }
        byPosition[position] = pairs;
    }
}
