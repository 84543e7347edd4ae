package io.moemesh.gateway.dispatch;

import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.StepContext;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's {@link ExpertDispatch}: for each MoE layer, every (token, expert) pair is assigned to a
 * healthy instance holding the expert (which replica: the configured {@link ReplicaPicker}), each instance with
 * pairs gets its rows as {@code ExpertCall}s of at most {@code maxRowsPerCall} rows ({@link ExpertBatches}: no
 * request or reply outgrows the gRPC message limit), and the replies are summed into the output in instance order
 * (deterministic). Where the rows of traced prompt passes went is recorded per sequence in {@link DispatchTraces}.
 * Waiting, retries and hedges are {@link LayerCalls}': a failed or timed-out call is retried on other replicas within
 * the step deadline, a call still unanswered after its hedge delay (half the time its step had left) is sent to another
 * replica too and the first reply wins, a call refused as busy ({@link ResilientInstance.Refused}) waits for its
 * instance's next answer and goes there again, and a probe of a half-open breaker may use at most half the step
 * deadline when another usable replica holds all of its pairs, the whole of it when none does (probing never fails a
 * request by itself: a probe cut short leaves its pairs somewhere to go); if an expert has no healthy replica left the
 * step fails with {@link ExpertUnavailableException} naming it. "Healthy" is {@link ResilientInstance#available()}:
 * breaker not open, gRPC health not down.
 * {@link #run}, {@link #start} (and its handle) and {@link #usePlacement} are called from the engine thread only; {@link #missingExperts()},
 * {@link #instances()} and {@link #epoch()} from any thread.
 */
public final class MeshExpertDispatch implements ExpertDispatch, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MeshExpertDispatch.class);
    private final int hidden;
    private final Function<Instance, ResilientInstance> connect;
    private final Duration stepDeadline;
    private final DispatchTraces traces;
    private final PairAssignment assignment;
    private final int maxRowsPerCall;
    private final Map<String, ResilientInstance> clients = new HashMap<>();
    /** The last placement whose instances could not be connected: tried again after a backoff. */
    private final RefusedPlacement refused;
    private final Map<String, Instance> known = new HashMap<>();
    private PlacementTable table;
    private ResilientInstance[] byIndex = new ResilientInstance[0];
    /** The current placement's instance ids, in its order (what {@code target} indexes). */
    private List<String> ids = List.of();
    /** The same two for other threads (health checks, metrics): replaced whole, never mutated. */
    private volatile Placed placed;

    private record Placed(PlacementTable table, List<ResilientInstance> instances) {
    }

    /**
     * An expert of the current placement with no usable replica now.
     *
     * @param placedOn ids of the instances that hold it
     */
    public record MissingExpert(int layer, int expert, List<String> placedOn) {
        @Override
        public String toString() {
            return "layer " + layer + " expert " + expert + " (placed on " + String.join(", ", placedOn) + ")";
        }
    }

    /** With today's replica rule ({@link ReplicaPicker#PREFER_VISITED}) and a record of traces of its own. */
    public MeshExpertDispatch(int hidden, int layers, Function<Instance, ResilientInstance> connect, Duration stepDeadline) {
        this(hidden, connect, stepDeadline, ReplicaPicker.PREFER_VISITED, new DispatchTraces(layers, 64));
    }

    /**
     * @param connect      opens the client of an instance of a new placement
     * @param stepDeadline a layer's calls, retries included, must finish within this
     * @param picker       which replica computes a pair
     * @param traces       where the rows of traced prompt passes are recorded
     */
    public MeshExpertDispatch(int hidden, Function<Instance, ResilientInstance> connect, Duration stepDeadline,
                              ReplicaPicker picker, DispatchTraces traces) {
        this(hidden, connect, stepDeadline, picker, traces, Integer.MAX_VALUE);
    }

    /**
     * @param maxRowsPerCall the most token rows one message carries ({@link ExpertBatches#maxRowsPerCall}); more
     *                       rows for one instance go in several messages
     */
    public MeshExpertDispatch(int hidden, Function<Instance, ResilientInstance> connect, Duration stepDeadline,
                              ReplicaPicker picker, DispatchTraces traces, int maxRowsPerCall) {
        this(hidden, connect, stepDeadline, picker, traces, maxRowsPerCall, System::nanoTime);
    }

    /** @param nanoTime the clock of a refused placement's retries ({@link System#nanoTime()}) */
    public MeshExpertDispatch(int hidden, Function<Instance, ResilientInstance> connect, Duration stepDeadline,
                              ReplicaPicker picker, DispatchTraces traces, int maxRowsPerCall, LongSupplier nanoTime) {
        if (maxRowsPerCall < 1) {
            throw new IllegalArgumentException("maxRowsPerCall must be >= 1, got " + maxRowsPerCall);
        }
        this.maxRowsPerCall = maxRowsPerCall;
        this.hidden = hidden;
        this.connect = connect;
        this.stepDeadline = stepDeadline;
        this.assignment = new PairAssignment(picker);
        this.traces = traces;
        this.refused = new RefusedPlacement(nanoTime);
    }

    /** Where the rows of traced prompt passes went. */
    public DispatchTraces traces() {
        return traces;
    }

    /**
     * Switches to a placement (at a step boundary): connects new instances, closes removed ones. The new clients are
     * connected before any old one is closed: when one cannot be (e.g. a {@code unix:///} endpoint where the
     * transport is unavailable), those just opened are closed, the current placement keeps serving with its
     * clients, and the refused placement is tried again after a backoff or when a different one comes
     * ({@link RefusedPlacement}); until one is applied, {@link #refusedPlacement()} names it (readiness fails on it).
     */
    public void usePlacement(PlacementTable next) {
        if (RefusedPlacement.same(table, next) || refused.holdsBack(next)) {
            return;
        }
        Map<String, ResilientInstance> opened = new HashMap<>();
        try {
            for (Instance in : next.instances()) {
                Instance had = known.get(in.getId());
                if (!opened.containsKey(in.getId()) && (had == null || !had.getEndpoint().equals(in.getEndpoint()))) {
                    opened.put(in.getId(), connect.apply(in));
                }
            }
        } catch (RuntimeException e) {
            opened.values().forEach(ResilientInstance::close);
            refused.refused(next, e, table == null ? 0 : table.epoch());
            return;
        }
        Map<String, Instance> wanted = new HashMap<>();
        for (Instance in : next.instances()) {
            wanted.put(in.getId(), in);
        }
        for (String id : List.copyOf(clients.keySet())) {
            if (!wanted.containsKey(id) || opened.containsKey(id)) {
                clients.remove(id).close();
                known.remove(id);
            }
        }
        clients.putAll(opened);
        ResilientInstance[] idx = new ResilientInstance[next.instances().size()];
        for (int i = 0; i < idx.length; i++) {
            Instance in = next.instances().get(i);
            idx[i] = clients.get(in.getId());
            known.put(in.getId(), in);
        }
        byIndex = idx;
        ids = next.instances().stream().map(Instance::getId).toList();
        table = next;
        refused.clear(next);
        placed = new Placed(next, List.of(idx));
    }

    /** Why the latest placement was not applied (an instance could not be connected); empty once one was. */
    public Optional<String> refusedPlacement() {
        return refused.reason();
    }

    /** The current placement's epoch; 0 before the first placement. */
    public long epoch() {
        Placed p = placed;
        return p == null ? 0 : p.table().epoch();
    }

    /** Whether a placement is known (without one, every step fails). */
    public boolean hasPlacement() {
        return placed != null;
    }

    /** The instances of the current placement, in its order. */
    public List<ResilientInstance> instances() {
        Placed p = placed;
        return p == null ? List.of() : p.instances();
    }

    /**
     * Experts of the current placement none of whose replicas is {@link ResilientInstance#available() available}
     * now: a token routed to one of them would fail its request. Layer-major, then by expert.
     */
    public List<MissingExpert> missingExperts() {
        Placed p = placed;
        if (p == null) {
            return List.of();
        }
        boolean[] usable = new boolean[p.instances().size()];
        for (int i = 0; i < usable.length; i++) {
            usable[i] = p.instances().get(i).available();
        }
        List<MissingExpert> missing = new ArrayList<>();
        int[][][] holders = p.table().holders();
        for (int layer = 0; layer < holders.length; layer++) {
            for (int expert = 0; expert < holders[layer].length; expert++) {
                boolean any = false;
                for (int h : holders[layer][expert]) {
                    any |= usable[h];
                }
                if (!any) {
                    List<String> ids = new ArrayList<>();
                    for (int h : holders[layer][expert]) {
                        ids.add(p.table().instances().get(h).getId());
                    }
                    missing.add(new MissingExpert(layer, expert, ids));
                }
            }
        }
        return missing;
    }

    @Override
    public void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                    float[] out) {
        start(step, layer, x, experts, weights, pairsPerToken, out).await();
    }

    /**
     * Assigns the layer's pairs and sends the first round of calls, to each instance with pairs one or more
     * messages (as many as its rows need at maxRowsPerCall), without waiting for them
     * (ping-pong micro-batches: the engine computes another micro-batch meanwhile); {@link Pending#await()} waits,
     * retries failed pairs and hedges slow calls on other replicas within the step deadline (counted from here) and
     * sums the replies ({@link LayerCalls}).
     * Several layers' calls (of different micro-batches) may be in flight at once; each handle keeps its own
     * state, and the placement does not change under them (it changes only at step boundaries).
     */
    @Override
    public Pending start(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken,
                         float[] out) {
        if (table == null) {
            // Requests are refused while there is no placement (GenerationService); this is the last guard.
            throw new NoPlacementException("no expert placement yet: the gateway does not know where experts live");
        }
        LayerCalls calls = new LayerCalls(new LayerCalls.Mesh(table, byIndex, ids, assignment, traces, hidden,
                maxRowsPerCall, stepDeadline), step, layer, x, experts, weights, pairsPerToken, out);
        calls.send();
        return calls;
    }

    /**
     * Where a layer's predicted pairs would be computed if they were its true routes: per instance that would
     * get any, the distinct experts, in order of first appearance (pass pairs best guess first). The same
     * {@link ReplicaPicker} over the same usable replicas as {@link #run}, but an expert with no usable replica is
     * skipped rather than an error: a prediction fails nothing. Engine thread only, between {@link #run}s.
     *
     * @param experts for row r, {@code experts[r·perRow + j]}: predicted experts of {@code layer}
     */
    public List<PrefetchTarget> prefetchTargets(int layer, int rows, int[] experts, int perRow) {
        if (table == null || layer < 0 || layer >= table.holders().length) {
            return List.of();
        }
        int[] target = new int[rows * perRow];
        assignment.predict(table, byIndex, layer, rows, experts, perRow, target);
        int[][] holders = table.holders()[layer];
        boolean[][] seen = new boolean[byIndex.length][holders.length];
        int[][] list = new int[byIndex.length][holders.length];
        int[] count = new int[byIndex.length];
        // Rank-major (every row's best guess before any second guess): most urgent first, as PrefetchRequest asks.
        for (int j = 0; j < perRow; j++) {
            for (int t = 0; t < rows; t++) {
                int p = t * perRow + j;
                int inst = target[p];
                if (inst >= 0 && !seen[inst][experts[p]]) {
                    seen[inst][experts[p]] = true;
                    list[inst][count[inst]++] = experts[p];
                }
            }
        }
        List<PrefetchTarget> out = new ArrayList<>();
        for (int i = 0; i < byIndex.length; i++) {
            if (count[i] > 0) {
                out.add(new PrefetchTarget(byIndex[i], table.epoch(), layer, Arrays.copyOf(list[i], count[i])));
            }
        }
        return out;
    }

    /**
     * Experts of one layer to hint to one instance.
     *
     * @param epoch the placement epoch the targets were computed under
     */
    public record PrefetchTarget(ResilientInstance instance, long epoch, int layer, int[] experts) {
    }

    @Override
    public void close() {
        clients.values().forEach(ResilientInstance::close);
        clients.clear();
    }
}
