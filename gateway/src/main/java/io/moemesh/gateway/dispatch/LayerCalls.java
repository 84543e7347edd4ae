package io.moemesh.gateway.dispatch;

import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One layer's expert calls for one batch of rows, from {@link MeshExpertDispatch#start} to the end of {@link #await}
 * or {@link #abandon}: sends them, waits for the replies, retries, hedges, and sums what came back.
 *
 * <p>Waiting reacts to whichever call ends first. A call that fails, or does not answer by its deadline (the step
 * deadline; half of it for a probe of a half-open breaker whose pairs another usable replica holds), puts its instance
 * out of this step, and its pairs are assigned again among the other healthy replicas. A call refused as busy (its instance's bulkhead is full, or its
 * half-open breaker's one probe is in flight) is no failure: it goes to the same instance again once one of that
 * instance's calls ends. A call that has not answered after its hedge delay (half the time the step had left when it
 * was sent) is hedged, after Dean and Barroso's hedged requests ("The Tail at Scale", CACM 56(2), 2013): its pairs
 * still to compute are sent too to another replica that holds them and is free ({@link #hedge}: not itself behind in
 * this step, nor busy with it), the call keeps running, and whichever reply comes first computes each pair; a pair
 * with no free replica waits for the call, up to the deadline. A reply is taken only if every pair it carries is still
 * to compute (a later one for the same pairs is dropped, its array given back), so each pair is summed exactly once.
 * The instance of a call that missed its hedge delay {@link ResilientInstance#markLagging lags} (the pickers avoid it
 * while another replica is usable).
 *
 * <p>When every pair is computed, the calls still in flight lost: one that missed its hedge delay is cancelled, which
 * counts against its instance's breaker (it did not answer by the time its step completed); a hedge that lost to the
 * call it hedged is {@link ResilientInstance#withdraw withdrawn} (it was sent late: no failure). Engine thread only.
 */
final class LayerCalls implements ExpertDispatch.Pending {

    /** What a layer's calls need of the dispatch: the placement in force and the dispatch's settings. */
    record Mesh(PlacementTable table, ResilientInstance[] instances, List<String> ids, PairAssignment assignment,
                DispatchTraces traces, int hidden, int maxRowsPerCall, Duration stepDeadline) {
    }

    /** One message: in flight, or refused as busy and waiting for its instance's next answer. */
    private static final class Call {
        final int inst;
        final ExpertBatches.Batch batch;
        final long hedgeAt;
        final long waitUntil;
        CompletableFuture<float[]> future;
        /** Taken before the call: if it is refused as busy, the call holding the slot completes it. */
        CompletableFuture<Void> nextAnswer;
        boolean waitingForSlot;
        boolean hedged;
        boolean over;

        Call(int inst, ExpertBatches.Batch batch, long hedgeAt, long waitUntil) {
            this.inst = inst;
            this.batch = batch;
            this.hedgeAt = hedgeAt;
            this.waitUntil = waitUntil;
        }
    }

    private final Mesh mesh;
    private final StepContext step;
    private final int layer;
    private final float[] x;
    private final int[] experts;
    private final float[] weights;
    private final int perToken;
    private final float[] out;
    private final int tokens;
    private final long deadline;
    /** The latest assignment of each pair (the first round's, then retries'). */
    private final int[] target;
    /** The instance whose reply computed each pair (what traces record). */
    private final int[] answeredBy;
    /** Pairs still to compute, and how many. */
    private final boolean[] pending;
    private int remaining;
    /** Calls in flight or waiting for a slot that carry each pair. */
    private final int[] carriers;
    /** Instances out of this step: a call failed or timed out. */
    private final boolean[] failed;
    /** Instances with a call that missed its hedge delay in this step: no hedge goes there. */
    private final boolean[] slow;
    private final List<Call> live = new ArrayList<>();
    /** Calls that ended (or whose instance answered another call, for one waiting for a slot): fed by callbacks. */
    private final LinkedBlockingQueue<Call> ended = new LinkedBlockingQueue<>();
    private final LayerReplies replies;
    private Throwable lastError;

    LayerCalls(Mesh mesh, StepContext step, int layer, float[] x, int[] experts, float[] weights, int perToken,
               float[] out) {
        this.mesh = mesh;
        this.step = step;
        this.layer = layer;
        this.x = x;
        this.experts = experts;
        this.weights = weights;
        this.perToken = perToken;
        this.out = out;
        this.tokens = step.rows();
        this.deadline = System.nanoTime() + mesh.stepDeadline().toNanos();
        int pairs = tokens * perToken;
        int n = mesh.instances().length;
        this.target = new int[pairs];
        this.answeredBy = new int[pairs];
        this.pending = new boolean[pairs];
        Arrays.fill(pending, true);
        this.remaining = pairs;
        this.carriers = new int[pairs];
        this.failed = new boolean[n];
        this.slow = new boolean[n];
        this.replies = new LayerReplies(n, mesh.hidden());
        mesh.assignment().assign(mesh.table(), mesh.instances(), layer, tokens, experts, perToken, target, failed,
                null);
    }

    /** The first round: every instance with pairs gets its messages. */
    void send() {
        send(target, pending);
    }

    /** Sends each pair of {@code only} to its instance in {@code to}, in messages of at most maxRowsPerCall rows. */
    private void send(int[] to, boolean[] only) {
        for (int inst = 0; inst < mesh.instances().length; inst++) {
            for (ExpertBatches.Batch b : ExpertBatches.forInstance(mesh.table().epoch(), inst, layer, x, mesh.hidden(),
                    tokens, experts, weights, perToken, to, only, mesh.maxRowsPerCall())) {
                sendOne(inst, b);
            }
        }
    }

    private void sendOne(int inst, ExpertBatches.Batch b) {
        ResilientInstance instance = mesh.instances()[inst];
        long now = System.nanoTime();
        // A probe may use half the step deadline, so its pairs still fit elsewhere when it fails or hangs; it is not
        // hedged: at that point it is cancelled, and its pairs retried, instead. Only when another replica could take
        // them: for the sole holder of a pair, giving up early would fail the step with the rest of the deadline
        // unused, so its probe waits as any call does (probing never fails a request by itself).
        boolean probe = instance.probing();
        long waitUntil = probe && othersCouldTake(inst, b)
                ? Math.min(deadline, now + mesh.stepDeadline().toNanos() / 2) : deadline;
        Call c = new Call(inst, b, probe ? waitUntil : now + (deadline - now) / 2, waitUntil);
        live.add(c);
        for (int p : b.pairs()) {
            carriers[p]++;
        }
        call(c);
    }

    /** Whether every pair of {@code b} has a holder besides {@code inst} that is usable and not out of this step. */
    private boolean othersCouldTake(int inst, ExpertBatches.Batch b) {
        int[][] holders = mesh.table().holders()[layer];
        for (int p : b.pairs()) {
            boolean other = false;
            for (int h : holders[experts[p]]) {
                if (h != inst && !failed[h] && mesh.instances()[h].available()) {
                    other = true;
                    break;
                }
            }
            if (!other) {
                return false;
            }
        }
        return true;
    }

    private void call(Call c) {
        ResilientInstance instance = mesh.instances()[c.inst];
        c.nextAnswer = instance.nextAnswer();
        c.future = instance.call(c.batch.call());
        c.future.whenComplete((r, e) -> ended.add(c));
    }

    @Override
    public void await() {
        for (Call c : live) {
            if (!c.future.isDone()) {
                Parallel.parkHelpers(); // a reply is still on its way: the helpers need not spin for it
                break;
            }
        }
        try {
            while (remaining > 0) {
                for (Call c = ended.poll(); c != null; c = ended.poll()) {
                    handle(c);
                }
                if (remaining == 0) {
                    break;
                }
                long now = System.nanoTime();
                boolean anyHedged = false;
                for (int i = 0, n = live.size(); i < n; i++) {
                    Call c = live.get(i);
                    if (c.over) {
                        continue;
                    }
                    if (now - c.waitUntil >= 0) {
                        timedOut(c);
                    } else if (!c.hedged && now - c.hedgeAt >= 0) {
                        c.hedged = true;
                        slow[c.inst] = true;
                        mesh.instances()[c.inst].markLagging(c.waitUntil);
                    }
                    anyHedged |= c.hedged && !c.over;
                }
                live.removeIf(c -> c.over);
                if (anyHedged) {
                    hedge();
                }
                sendUncovered(now);
                Call c = ended.poll(Math.max(0, nextDue() - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (c != null) {
                    handle(c);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            endLive();
            replies.drop();
            throw new ExpertUnavailableException("layer " + layer + ": interrupted while waiting for experts", e);
        } catch (RuntimeException e) {
            endLive();
            replies.drop();
            throw e;
        }
        endLive();
        mesh.traces().record(step, layer, experts, perToken, answeredBy, mesh.ids(), mesh.table().epoch());
        replies.sumInto(out, tokens);
    }

    /** Acts on what happened to {@code c}: its reply, its failure, its refusal as busy, or its instance's answer. */
    private void handle(Call c) {
        if (c.over) {
            return;
        }
        if (c.waitingForSlot) {
            if (c.nextAnswer.isDone()) {
                resend(c);
            }
            return;
        }
        CompletableFuture<float[]> f = c.future;
        if (!f.isDone()) {
            return;
        }
        if (f.state() == Future.State.SUCCESS) {
            accept(c, f.resultNow());
            end(c);
        } else if (refusedBusy(f)) {
            // Not a failure of the instance: its slot is taken by a call in flight (often the other micro-batch's
            // probe). Sent again once one of its calls ends.
            c.waitingForSlot = true;
            c.nextAnswer.whenComplete((v, e) -> ended.add(c));
        } else {
            lastError = f.state() == Future.State.FAILED ? f.exceptionNow() : new TimeoutException("cancelled");
            failed[c.inst] = true;
            end(c);
        }
    }

    private static boolean refusedBusy(CompletableFuture<float[]> f) {
        return f.state() == Future.State.FAILED
                && f.exceptionNow() instanceof ResilientInstance.Refused r && r.busy();
    }

    /** A call refused as busy, again now that a call of its instance ended (refused again if still busy). */
    private void resend(Call c) {
        if (!allPending(c.batch)) {
            end(c); // a hedge computed some of its pairs meanwhile: the rest are sent anew
            return;
        }
        c.waitingForSlot = false;
        call(c);
    }

    /** Takes a reply if every pair it carries is still to compute; else another reply had them first: dropped. */
    private void accept(Call c, float[] reply) {
        if (!allPending(c.batch)) {
            TensorArrayPool.shared().give(reply);
            return;
        }
        int firstPair = Integer.MAX_VALUE;
        for (int p : c.batch.pairs()) {
            pending[p] = false;
            answeredBy[p] = c.inst;
            firstPair = Math.min(firstPair, p);
        }
        replies.add(c.inst, reply, c.batch.tokenRows(), firstPair);
        remaining -= c.batch.pairs().length;
    }

    private boolean allPending(ExpertBatches.Batch b) {
        for (int p : b.pairs()) {
            if (!pending[p]) {
                return false;
            }
        }
        return true;
    }

    private void end(Call c) {
        c.over = true;
        for (int p : c.batch.pairs()) {
            carriers[p]--;
        }
    }

    /** Past its deadline: cancelled (a failure of its instance, which is out of this step); its pairs go elsewhere. */
    private void timedOut(Call c) {
        if (c.waitingForSlot) {
            lastError = c.future.exceptionNow(); // no call of the instance ended in time: the refusal stands
        } else {
            if (!c.future.cancel(false)) {
                handle(c); // it ended just now
                return;
            }
            lastError = new TimeoutException(mesh.ids().get(c.inst) + " did not answer layer " + layer + " within "
                    + (c.waitUntil == deadline ? "the step deadline" : "half the step deadline (a probe)"));
        }
        failed[c.inst] = true;
        end(c);
    }

    /**
     * The pairs still to compute that only a call past its hedge delay carries go to other replicas too, where one
     * holds them that is free: not failed or slow in this step, not lagging (a call of another batch there missed its
     * hedge delay), and with no call of this step in flight (it computes its own share first, or another hedge). When
     * every instance is slow at once (a long prompt chunk on cores they share) none gets another's work on top. A call
     * with a pair no free replica holds is not hedged now (a holder may become free when its own call answers).
     */
    private void hedge() {
        int n = mesh.instances().length;
        boolean[] excluded = new boolean[n];
        boolean anyFree = false;
        for (Call c : live) {
            excluded[c.inst] = true;
        }
        for (int i = 0; i < n; i++) {
            excluded[i] |= failed[i] || slow[i] || mesh.instances()[i].lagging();
            anyFree |= !excluded[i];
        }
        if (!anyFree) {
            return;
        }
        boolean[] only = null;
        for (Call c : live) {
            if (!c.hedged) {
                continue;
            }
            for (int p : c.batch.pairs()) {
                if (pending[p] && carriers[p] == 1) {
                    if (only == null) {
                        only = new boolean[pending.length];
                    }
                    only[p] = true;
                }
            }
        }
        if (only == null) {
            return;
        }
        int[] elsewhere = new int[pending.length];
        Arrays.fill(elsewhere, -1);
        mesh.assignment().assignElsewhere(mesh.table(), mesh.instances(), layer, tokens, experts, perToken, elsewhere,
                excluded, only);
        // A call is hedged whole or not at all: a reply row is the sum of its token's pairs, so once a hedge has
        // answered some of a call's pairs the call's own reply is unusable, and a pair no free replica holds would
        // have to go back to the slow instance with less time left. Each call's hedge travels on its own, so an
        // original answering first voids only its own hedge.
        List<boolean[]> whole = new ArrayList<>();
        for (Call c : live) {
            if (!c.hedged) {
                continue;
            }
            boolean[] mine = null;
            boolean covered = true;
            for (int p : c.batch.pairs()) {
                if (only[p]) {
                    covered &= elsewhere[p] >= 0;
                    if (mine == null) {
                        mine = new boolean[pending.length];
                    }
                    mine[p] = true;
                }
            }
            if (mine != null && covered) {
                whole.add(mine);
            }
        }
        for (boolean[] mine : whole) {
            send(elsewhere, mine);
        }
    }

    /**
     * Pairs still to compute that no call carries (their calls failed or timed out) go to other healthy replicas.
     *
     * @throws ExpertUnavailableException past the step deadline, or naming an expert with no healthy replica left
     */
    private void sendUncovered(long now) {
        boolean[] need = null;
        for (int p = 0; p < pending.length; p++) {
            if (pending[p] && carriers[p] == 0) {
                if (need == null) {
                    need = new boolean[pending.length];
                }
                need[p] = true;
            }
        }
        if (need == null) {
            return;
        }
        if (now - deadline >= 0) {
            throw new ExpertUnavailableException("layer " + layer + ": expert calls did not finish within the "
                    + "step deadline of " + mesh.stepDeadline().toMillis() + " ms", lastError);
        }
        mesh.assignment().assign(mesh.table(), mesh.instances(), layer, tokens, experts, perToken, target, failed,
                need);
        send(target, need);
    }

    /** When the next call is due to be hedged or given up. */
    private long nextDue() {
        long due = deadline;
        for (Call c : live) {
            if (!c.over) {
                long at = c.hedged ? c.waitUntil : Math.min(c.hedgeAt, c.waitUntil);
                due = at - due < 0 ? at : due;
            }
        }
        return due;
    }

    /**
     * The calls still in flight once the layer is done (or failed): a reply already here is given back; a call that
     * missed its hedge delay is cancelled (counted against its instance: it did not answer by the time the step
     * ended); any other is withdrawn (not its instance's fault).
     */
    private void endLive() {
        for (Call c : live) {
            if (c.over || c.waitingForSlot) {
                continue;
            }
            c.over = true;
            if (c.future.isDone()) {
                if (c.future.state() == Future.State.SUCCESS) {
                    TensorArrayPool.shared().give(c.future.resultNow());
                }
            } else if (c.hedged) {
                c.future.cancel(false);
            } else {
                mesh.instances()[c.inst].withdraw(c.future);
            }
        }
        live.clear();
    }

    /**
     * Lets the calls in flight finish (their replies are dropped), each within the deadline it would have been awaited
     * for, and cancels one only once that passes, as {@link #await} would: cancelling a healthy call at once would
     * count as a failure against its instance's breaker. No retries, no hedges.
     */
    @Override
    public void abandon() {
        for (Call c : live) {
            if (c.over || c.waitingForSlot || refusedBusy(c.future)) {
                continue;
            }
            try {
                TensorArrayPool.shared().give(c.future.get(Math.max(0, c.waitUntil - System.nanoTime()),
                        TimeUnit.NANOSECONDS));
            } catch (ExecutionException | RuntimeException ex) {
                // Its failure no longer matters: the step failed already.
            } catch (TimeoutException ex) {
                c.future.cancel(false);
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                break; // the rest, this one included, are withdrawn: not their instances' fault
            }
            c.over = true;
        }
        endLive();
    }
}
