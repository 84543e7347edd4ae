package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.kernel.VectorOps;
import java.util.ArrayList;
import java.util.List;

/**
 * The MoE decoder forward pass over a batched step: any mix of prefill chunks and decode tokens from many
 * sequences runs as one set of GEMMs per projection (q, k and v fused into one pass), attention per token over
 * its own sequence's paged KV, and each MoE layer's experts through an {@link ExpertDispatch} (in-process, or
 * the mesh), attention over a sequence's remote prefix (KV kept by the kvcache-service) through a
 * {@link RemoteAttention} merged with the local part. Each step is described by a {@link StepContext} (which sequence, position, token, tenant and
 * phase every row is), which the engine hands to the expert dispatch, the KV cache and the {@link RouteObserver}.
 * Not thread-safe: one step at a time. Its buffers are reused across steps, so a warmed-up step allocates only
 * what it returns (the {@link StepOutput}s and their logits, route traces when asked for) and, when called with
 * a list, its step context; nothing per layer. With {@link MicroBatching} a step is split into micro-batches
 * whose expert calls ({@link ExpertDispatch#start}) are in flight while the engine computes the others' layers
 * (MegaScale-Infer's ping-pong, Zhu et al. 2025), grouped by a {@link MicroBatchGrouping}. How to drive it:
 * docs/engine.md.
 */
public final class Engine {
    private final ModelConfig c;
    private final DenseWeights w;
    private final ExpertDispatch experts;
    private final RouteObserver routes;
    private final LookaheadObserver lookahead;
    private final RemotePrefixAttention remotes;
    private final MicroBatching microBatching;
    private final MicroBatchGrouping grouping;
    private final ExpertWaits waits = new ExpertWaits();
    /** The lookahead's experts per row, k' (0: none is computed). */
    private final int guesses;
    private final Attention attention;
    private final Rope rope;
    private final Router router;
    /**
     * The step's micro-batches (one unless {@link MicroBatching} splits it), each with its activations, scratch
     * and remote-attention batch; grown on demand, reused across steps.
     */
    private MicroBatch[] lanes;
    /** With several micro-batches: every row's routes and lookahead, gathered in step row order for the observers. */
    private int[] allExperts = new int[0];
    private float[] allWeights = new float[0];
    private int[] allLookExperts = new int[0];
    private float[] allLookScores = new float[0];
    /** The rows that need logits, gathered from the micro-batches, and their logits. */
    private float[] logitRows = new float[0];
    private float[] logitsBuf = new float[0];
    /** Per layer {q, k, v}: one fused matmul reads the normalised input once. */
    private final Matrix[][] qkv;
    private static final float[] NO_LOGITS = new float[0];

    public Engine(ModelConfig config, DenseWeights weights, ExpertDispatch experts) {
        this(config, weights, experts, RouteObserver.NONE);
    }

    /** With an observer that sees the gate's choice for every row at every MoE layer. */
    public Engine(ModelConfig config, DenseWeights weights, ExpertDispatch experts, RouteObserver routes) {
        this(config, weights, experts, routes, LookaheadObserver.NONE);
    }

    /**
     * With a route observer and a lookahead observer that sees, during each layer but the last, the next layer's
     * predicted experts for every row (computed only when {@link LookaheadObserver#guesses()} is above 0).
     */
    public Engine(ModelConfig config, DenseWeights weights, ExpertDispatch experts, RouteObserver routes,
                  LookaheadObserver lookahead) {
        this(config, weights, experts, routes, lookahead, RemoteAttention.NONE);
    }

    /**
     * With route and lookahead observers and the {@link RemoteAttention} that computes attention over the
     * sequences' remote prefixes ({@link KvCache#remotePrefix}); a step whose cache reports none never calls it.
     */
    public Engine(ModelConfig config, DenseWeights weights, ExpertDispatch experts, RouteObserver routes,
                  LookaheadObserver lookahead, RemoteAttention remote) {
        this(config, weights, experts, routes, lookahead, remote, MicroBatching.OFF);
    }

    /**
     * With everything above and ping-pong micro-batches ({@link MicroBatching}): each step split so that one
     * micro-batch's expert call ({@link ExpertDispatch#start}) is in flight while the engine computes another's
     * layer. Only worth it with a dispatch that sends work elsewhere; {@link MicroBatching#OFF} runs every step
     * as one batch.
     */
    public Engine(ModelConfig config, DenseWeights weights, ExpertDispatch experts, RouteObserver routes,
                  LookaheadObserver lookahead, RemoteAttention remote, MicroBatching microBatching) {
        if (lookahead.guesses() < 0) {
            throw new IllegalArgumentException("lookahead guesses must be >= 0, got " + lookahead.guesses());
        }
        this.c = config;
        this.w = weights;
        this.experts = experts;
        this.grouping = MicroBatchGrouping.named(microBatching.grouping(), config);
        this.routes = grouping.observing(routes);
        this.lookahead = lookahead;
        this.remotes = new RemotePrefixAttention(remote, config);
        this.microBatching = microBatching;
        this.lanes = new MicroBatch[] {new MicroBatch(config.numHeads(), config.headDim())};
        this.guesses = Math.min(lookahead.guesses(), config.numExperts());
        this.attention = new Attention(config);
        this.rope = new Rope(config.headDim(), config.ropeTheta());
        this.router = new Router(config);
        this.qkv = new Matrix[config.numLayers()][];
        for (int l = 0; l < qkv.length; l++) {
            LayerWeights lw = weights.layers()[l];
            qkv[l] = new Matrix[] {lw.q(), lw.k(), lw.v()};
        }
    }

    public ModelConfig config() {
        return c;
    }

    /** How steps are split into micro-batches. */
    public MicroBatching microBatching() {
        return microBatching;
    }

    /** Where the engine's time went around its expert calls (overlapped vs waited); readable from any thread. */
    public ExpertWaits expertWaits() {
        return waits;
    }

    /**
     * Runs one step. The cache must be able to hold each sequence up to its {@link SequenceStep#endPos()}
     * (the scheduler reserves blocks first; a step that finds the pool short fails fast).
     */
    public List<StepOutput> step(List<SequenceStep> batch, KvCache cache) {
        return step(StepContext.of(batch), cache);
    }

    /**
     * Runs the step the context describes: reserves each sequence's capacity, tells the cache the step starts,
     * computes every layer (the dispatch and the route observer see the context), and tells the cache it
     * completed; a step that fails throws and completes nothing.
     */
    public List<StepOutput> step(StepContext ctx, KvCache cache) {
        List<SequenceStep> batch = ctx.sequences();
        int tokens = 0;
        for (SequenceStep s : batch) {
            if (s.endPos() > c.maxPositionEmbeddings()) {
                throw new IllegalArgumentException("sequence " + s.seqId() + " reaches position " + s.endPos()
                        + ", beyond max_position_embeddings " + c.maxPositionEmbeddings());
            }
            if (!cache.ensureCapacity(s.seqId(), s.endPos())) {
                throw new IllegalStateException("KV cache has no room for sequence " + s.seqId()
                        + " up to position " + s.endPos() + "; reserve blocks before the step");
            }
            tokens += s.tokens().length;
        }
        int[] cuts = microBatching.split(batch, c.topK(), c.numExperts());
        MicroBatchGrouping.Groups groups = cuts.length > 2 ? grouping.group(batch, cuts) : null;
        // Grouped: the step runs in micro-batch order (its context so ordered), outputs go back to batch order.
        return groups == null ? run(ctx, cuts, tokens, cache, ctx)
                : groups.restore(run(groups.context(batch), groups.cuts(), tokens, cache, ctx));
    }

    /** The step in the context's order, cut at {@code cuts}; the cache sees the scheduler's context. */
    private List<StepOutput> run(StepContext ctx, int[] cuts, int tokens, KvCache cache, StepContext scheduled) {
        List<SequenceStep> batch = ctx.sequences();
        int pairs = c.pairsPerToken();
        int parts = cuts.length - 1;
        if (lanes.length < parts) {
            MicroBatch[] grown = java.util.Arrays.copyOf(lanes, parts);
            for (int m = lanes.length; m < parts; m++) {
                grown[m] = new MicroBatch(c.numHeads(), c.headDim());
            }
            lanes = grown;
        }
        int row = 0;
        for (int m = 0; m < parts; m++) {
            MicroBatch mb = lanes[m];
            mb.ctx = parts == 1 ? ctx : StepContext.of(batch.subList(cuts[m], cuts[m + 1]));
            mb.firstSeq = cuts[m];
            mb.firstRow = row;
            mb.rows = mb.ctx.rows();
            mb.pending = null;
            row += mb.rows;
            embed(mb, cache);
        }
        if (parts > 1 && allExperts.length < tokens * pairs) {
            allExperts = new int[tokens * pairs];
            allWeights = new float[tokens * pairs];
            allLookExperts = new int[tokens * guesses];
            allLookScores = new float[tokens * guesses];
        }
        // Token ids are valid (checked above while embedding): the cache may learn what this step writes.
        cache.stepStarted(scheduled);
        int[][][][] traced = null;
        float[][][][] tracedWeights = null;
        for (int b = 0; b < batch.size(); b++) {
            if (batch.get(b).traceRoutes()) {
                if (traced == null) {
                    traced = new int[batch.size()][][][];
                    tracedWeights = new float[batch.size()][][][];
                }
                traced[b] = new int[c.numLayers()][batch.get(b).tokens().length][];
                tracedWeights[b] = new float[c.numLayers()][batch.get(b).tokens().length][];
            }
        }
        try {
            // Ping-pong (MegaScale-Infer): micro-batch m's layer l needs only its own layer l − 1 experts, so while
            // those of m are in flight the engine computes the others' layers. With one micro-batch this is the
            // plain order: attention, gate, observers, experts, next layer.
            for (int l = 0; l < c.numLayers(); l++) {
                for (int m = 0; m < parts; m++) {
                    MicroBatch mb = lanes[m];
                    if (l > 0) {
                        finish(mb);
                    }
                    layerUpToExperts(mb, l, cache);
                    if (m == parts - 1) {
                        observe(ctx, batch, parts, l, traced, tracedWeights);
                    }
                    mb.pending = experts.start(mb.ctx, l, mb.buf.xn, mb.buf.experts, mb.buf.weights, pairs, mb.buf.moe);
                    mb.sentAt = System.nanoTime();
                }
            }
            for (int m = 0; m < parts; m++) {
                finish(lanes[m]);
            }
        } catch (RuntimeException | Error e) {
            // The step fails as a whole; no micro-batch's call may outlive it.
            for (int m = 0; m < parts; m++) {
                ExpertDispatch.Pending p = lanes[m].pending;
                lanes[m].pending = null;
                if (p != null) {
                    try {
                        p.abandon();
                    } catch (RuntimeException suppressed) {
                        e.addSuppressed(suppressed);
                    }
                }
            }
            throw e;
        }
        List<StepOutput> out = logits(batch, parts, traced, tracedWeights, tokens);
        cache.stepCompleted(scheduled);
        return out;
    }

    /** Embeds a micro-batch's tokens and reads its sequences' positions, remote prefixes and block tables. */
    private void embed(MicroBatch mb, KvCache cache) {
        int hidden = c.hiddenSize();
        StepBuffers buf = mb.buf;
        buf.ensure(c, mb.rows, guesses);
        int[][] tables = buf.tables;
        boolean remoteRows = false;
        int t = 0;
        for (SequenceStep s : mb.ctx.sequences()) {
            int prefix = remotes.prefix(cache, s);
            int[] table = cache.blockTable(s.seqId());
            remoteRows |= prefix > 0;
            for (int i = 0; i < s.tokens().length; i++, t++) {
                int id = s.tokens()[i];
                if (id < 0 || id >= c.vocabSize()) {
                    throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, "
                            + c.vocabSize() + ")");
                }
                w.embed().row(id, buf.h, t * hidden);
                buf.pos[t] = s.startPos() + i;
                buf.prefix[t] = prefix;
                tables[t] = table;
            }
        }
        mb.remoteRows = remoteRows;
        if (remoteRows) {
            mb.remote.reset(mb.ctx, mb.rows);
            for (int r = 0; r < mb.rows; r++) {
                if (buf.prefix[r] > 0) {
                    mb.remote.add(r, buf.prefix[r]);
                }
            }
        }
    }

    /** A micro-batch's layer up to its expert dispatch: attention, residual, the gate (and the lookahead). */
    private void layerUpToExperts(MicroBatch mb, int l, KvCache cache) {
        int hidden = c.hiddenSize();
        int pairs = c.pairsPerToken();
        int tokens = mb.rows;
        StepBuffers buf = mb.buf;
        float eps = (float) c.rmsNormEps();
        LayerWeights lw = w.layers()[l];
        VectorOps.rmsNorm(buf.h, 0, lw.inputNorm(), eps, buf.xn, 0, tokens, hidden);
        attentionBlock(mb, l, lw, cache);
        VectorOps.add(buf.o, 0, buf.h, 0, tokens * hidden);

        VectorOps.rmsNorm(buf.h, 0, lw.postAttentionNorm(), eps, buf.xn, 0, tokens, hidden);
        MatMul.matmul(buf.xn, tokens, lw.router(), buf.routerLogits);
        for (int i = 0; i < tokens; i++) {
            router.route(l, buf.routerLogits, i * c.numExperts(), buf.experts, buf.weights, i * pairs);
        }
        if (lw.sharedGate() != null) {
            // Qwen2-MoE: the shared expert joins every token with weight sigmoid(shared_expert_gate · x).
            MatMul.matmul(buf.xn, tokens, lw.sharedGate(), buf.sharedLogit);
            for (int i = 0; i < tokens; i++) {
                buf.experts[i * pairs + c.topK()] = c.numExperts();
                buf.weights[i * pairs + c.topK()] = VectorOps.sigmoid(buf.sharedLogit[i]);
            }
        }
        if (guesses > 0 && l + 1 < c.numLayers()) {
            lookahead(buf, l + 1, tokens);
        }
    }

    /**
     * The observers' view of layer l, once per layer for the whole step (after the last micro-batch's gate): every
     * row's routes in step row order (gathered from the micro-batches when there are several), the route trace,
     * the route observer, and the lookahead observer.
     */
    private void observe(StepContext ctx, List<SequenceStep> batch, int parts, int l, int[][][][] traced,
                         float[][][][] tracedWeights) {
        int pairs = c.pairsPerToken();
        int[] routed = lanes[0].buf.experts;
        float[] routeWeights = lanes[0].buf.weights;
        int[] look = lanes[0].buf.lookExperts;
        float[] lookScores = lanes[0].buf.lookScores;
        boolean ahead = guesses > 0 && l + 1 < c.numLayers();
        if (parts > 1) {
            for (int m = 0; m < parts; m++) {
                MicroBatch mb = lanes[m];
                System.arraycopy(mb.buf.experts, 0, allExperts, mb.firstRow * pairs, mb.rows * pairs);
                System.arraycopy(mb.buf.weights, 0, allWeights, mb.firstRow * pairs, mb.rows * pairs);
                if (ahead) {
                    System.arraycopy(mb.buf.lookExperts, 0, allLookExperts, mb.firstRow * guesses, mb.rows * guesses);
                    System.arraycopy(mb.buf.lookScores, 0, allLookScores, mb.firstRow * guesses, mb.rows * guesses);
                }
            }
            routed = allExperts;
            routeWeights = allWeights;
            look = allLookExperts;
            lookScores = allLookScores;
        }
        if (traced != null) {
            recordRoutes(batch, traced, tracedWeights, l, pairs, routed, routeWeights);
        }
        routes.onRoutes(ctx, l, routed, routeWeights, pairs);
        if (ahead) {
            lookahead.onLookahead(ctx, l + 1, look, lookScores, guesses);
        }
    }

    /** Awaits a micro-batch's expert call and adds its result to the residual stream. */
    private void finish(MicroBatch mb) {
        ExpertDispatch.Pending p = mb.pending;
        // Whether await returns or throws, nothing of the call is in flight afterwards (ExpertDispatch.Pending).
        mb.pending = null;
        long awaiting = System.nanoTime();
        p.await();
        if (p != ExpertDispatch.Pending.DONE) {
            waits.record(mb.sentAt, awaiting, System.nanoTime());
        }
        VectorOps.add(mb.buf.moe, 0, mb.buf.h, 0, mb.rows * c.hiddenSize());
    }

    /**
     * Pre-gated MoE (Hwang et al., ISCA 2024): layer {@code next}'s gate applied to {@code buf.xn}, the
     * MoE input of layer next − 1 (its hidden state after attention, normalised by its post-attention RMSNorm:
     * exactly what layer next − 1's own gate sees). That is the closest available stand-in for layer next's true
     * gate input: the residual stream changes only by layer next − 1's MoE output and layer next's attention
     * before it, and both layers normalise with an RMSNorm whose scale differs per channel, so the same gate
     * matrix mostly ranks experts alike. Pre-gated MoE trains a gate for this input; the engine serves published
     * checkpoints and uses layer next's own gate as is, so the guesses are as good as that resemblance (measured:
     * docs/engine.md). Writes only the lookahead buffers: the step's result never depends on it.
     */
    private void lookahead(StepBuffers buf, int next, int tokens) {
        int e = c.numExperts();
        MatMul.matmul(buf.xn, tokens, w.layers()[next].router(), buf.lookLogits);
        for (int i = 0; i < tokens; i++) {
            VectorOps.softmax(buf.lookLogits, i * e, e);
            topK(buf.lookLogits, i * e, e, guesses, buf.lookExperts, buf.lookScores, i * guesses);
        }
    }

    /** The k largest of {@code p[lo, lo + n)} by descending value, ties to the lower index (as {@link Router}). */
    private static void topK(float[] p, int lo, int n, int k, int[] outIdx, float[] outVal, int off) {
        for (int j = 0; j < k; j++) {
            int best = -1;
            float bestP = Float.NEGATIVE_INFINITY;
            for (int x = 0; x < n; x++) {
                float v = p[lo + x];
                if (v > bestP && !chosen(outIdx, off, j, x)) {
                    best = x;
                    bestP = v;
                }
            }
            outIdx[off + j] = best;
            outVal[off + j] = bestP;
        }
    }

    private static boolean chosen(int[] idx, int off, int n, int x) {
        for (int j = 0; j < n; j++) {
            if (idx[off + j] == x) {
                return true;
            }
        }
        return false;
    }

    private void attentionBlock(MicroBatch mb, int l, LayerWeights lw, KvCache cache) {
        StepBuffers buf = mb.buf;
        int tokens = mb.rows;
        boolean remoteRows = mb.remoteRows;
        int qDim = c.qDim();
        int kvDim = c.kvDim();
        MatMul.matmul(buf.xn, tokens, qkv[l], buf.qkv);
        if (lw.qBias() != null) {
            for (int i = 0; i < tokens; i++) {
                VectorOps.add(lw.qBias(), 0, buf.q, i * qDim, qDim);
                VectorOps.add(lw.kBias(), 0, buf.k, i * kvDim, kvDim);
                VectorOps.add(lw.vBias(), 0, buf.v, i * kvDim, kvDim);
            }
        }
        if (lw.qNorm() != null) {
            // OLMoE normalises the whole q and k projections before splitting them into heads.
            float eps = (float) c.rmsNormEps();
            VectorOps.rmsNorm(buf.q, 0, lw.qNorm(), eps, buf.q, 0, tokens, qDim);
            VectorOps.rmsNorm(buf.k, 0, lw.kNorm(), eps, buf.k, 0, tokens, kvDim);
        }
        for (int i = 0; i < tokens; i++) {
            rope.apply(buf.q, i * qDim, c.numHeads(), buf.pos[i]);
            rope.apply(buf.k, i * kvDim, c.numKvHeads(), buf.pos[i]);
            attention.write(cache, l, buf.tables[i], buf.prefix[i], buf.pos[i], buf.k, buf.v, i);
        }
        if (remoteRows) {
            remotes.start(mb.remote, buf.q, l);
        }
        attention.attend(cache, l, buf.q, buf.tables, buf.pos, buf.prefix, tokens, buf.attn, buf.lse);
        if (remoteRows) {
            remotes.merge(mb.remote, buf.attn, buf.lse, l);
        }
        MatMul.matmul(buf.attn, tokens, lw.o(), buf.o);
    }

    private void recordRoutes(List<SequenceStep> batch, int[][][][] traced, float[][][][] tracedWeights, int layer,
                              int pairs, int[] routed, float[] routeWeights) {
        int t = 0;
        for (int b = 0; b < batch.size(); b++) {
            int n = batch.get(b).tokens().length;
            if (traced[b] != null) {
                for (int i = 0; i < n; i++) {
                    int[] k = new int[c.topK()];
                    float[] kw = new float[c.topK()];
                    System.arraycopy(routed, (t + i) * pairs, k, 0, c.topK());
                    System.arraycopy(routeWeights, (t + i) * pairs, kw, 0, c.topK());
                    traced[b][layer][i] = k;
                    tracedWeights[b][layer][i] = kw;
                }
            }
            t += n;
        }
    }

    /**
     * The final norm and the LM head over the rows that need logits, gathered from every micro-batch in batch
     * order into one GEMM (the same rows, in the same order, as without micro-batches).
     */
    private List<StepOutput> logits(List<SequenceStep> batch, int parts, int[][][][] traced,
                                    float[][][][] tracedWeights, int tokens) {
        int hidden = c.hiddenSize();
        int vocab = c.vocabSize();
        List<StepOutput> out = new ArrayList<>(batch.size());
        int rows = 0;
        for (SequenceStep s : batch) {
            rows += switch (s.logits()) {
                case NONE -> 0;
                case LAST -> 1;
                case ALL -> s.tokens().length;
            };
        }
        if (logitRows.length < rows * hidden) {
            logitRows = new float[Math.max(rows * hidden, logitRows.length * 2)];
        }
        rows = 0;
        for (int m = 0; m < parts; m++) {
            MicroBatch mb = lanes[m];
            int t = 0;
            for (SequenceStep s : mb.ctx.sequences()) {
                int n = s.tokens().length;
                int from = switch (s.logits()) {
                    case NONE -> n;
                    case LAST -> n - 1;
                    case ALL -> 0;
                };
                for (int i = from; i < n; i++) {
                    System.arraycopy(mb.buf.h, (t + i) * hidden, logitRows, rows * hidden, hidden);
                    rows++;
                }
                t += n;
            }
        }
        if (rows > 0) {
            VectorOps.rmsNorm(logitRows, 0, w.finalNorm(), (float) c.rmsNormEps(), logitRows, 0, rows, hidden);
            if (logitsBuf.length < rows * vocab) {
                logitsBuf = new float[rows * vocab];
            }
            MatMul.matmul(logitRows, rows, w.lmHead(), logitsBuf);
        }
        int row = 0;
        for (int b = 0; b < batch.size(); b++) {
            SequenceStep s = batch.get(b);
            int n = switch (s.logits()) {
                case NONE -> 0;
                case LAST -> 1;
                case ALL -> s.tokens().length;
            };
            float[] logits = n == 0 ? NO_LOGITS : new float[n * vocab];
            System.arraycopy(logitsBuf, row * vocab, logits, 0, n * vocab);
            row += n;
            out.add(new StepOutput(s.seqId(), logits, n, traced == null ? null : traced[b],
                    tracedWeights == null ? null : tracedWeights[b]));
        }
        return out;
    }
}
