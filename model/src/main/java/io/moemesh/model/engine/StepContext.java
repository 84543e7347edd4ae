package io.moemesh.model.engine;

import java.util.Arrays;
import java.util.List;

/**
 * One engine step as the scheduler laid it out, the boundary between scheduling and execution (vLLM's
 * {@code SchedulerOutput}): the sequences' steps in batch order and, for every row of the step's activations,
 * which sequence, position and token it is, whose tenant and in which phase. The engine hands it to the
 * {@link ExpertDispatch}, the {@link KvCache} and the {@link RouteObserver}, so none of them has to be told
 * about a step through a side channel. Immutable.
 */
public final class StepContext {
    private final List<SequenceStep> sequences;
    private final int rows;
    private final int[] sequenceOfRow;
    private final int[] positions;
    private final int[] tokens;

    private StepContext(List<SequenceStep> sequences) {
        this.sequences = List.copyOf(sequences);
        int n = 0;
        long[] ids = new long[this.sequences.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = this.sequences.get(i).seqId();
            n += this.sequences.get(i).tokens().length;
        }
        Arrays.sort(ids);
        for (int i = 1; i < ids.length; i++) {
            if (ids[i] == ids[i - 1]) {
                throw new IllegalArgumentException("sequence " + ids[i] + " appears twice in one step");
            }
        }
        this.rows = n;
        this.sequenceOfRow = new int[n];
        this.positions = new int[n];
        this.tokens = new int[n];
        int r = 0;
        for (int i = 0; i < this.sequences.size(); i++) {
            SequenceStep s = this.sequences.get(i);
            for (int j = 0; j < s.tokens().length; j++, r++) {
                sequenceOfRow[r] = i;
                positions[r] = s.startPos() + j;
                tokens[r] = s.tokens()[j];
            }
        }
    }

    /** The context of a batch: rows in batch order, each sequence's tokens in position order. */
    public static StepContext of(List<SequenceStep> sequences) {
        return new StepContext(sequences);
    }

    public List<SequenceStep> sequences() {
        return sequences;
    }

    /** Rows of the step's activations (Σ tokens over the sequences). */
    public int rows() {
        return rows;
    }

    /** Index into {@link #sequences()} of the sequence a row belongs to. */
    public int sequenceIndex(int row) {
        return sequenceOfRow[row];
    }

    public SequenceStep sequence(int row) {
        return sequences.get(sequenceOfRow[row]);
    }

    public long seqId(int row) {
        return sequence(row).seqId();
    }

    public int position(int row) {
        return positions[row];
    }

    public int token(int row) {
        return tokens[row];
    }

    public String tenant(int row) {
        return sequence(row).tenant();
    }

    public boolean prefill(int row) {
        return sequence(row).phase() == SequenceStep.Phase.PREFILL;
    }

    /** Whether the row's sequence asked for a trace of this step. */
    public boolean traced(int row) {
        return sequence(row).traceRoutes();
    }
}
