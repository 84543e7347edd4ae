package io.moemesh.router.placement;

import java.util.List;

/**
 * Affinity packing, layer by layer (the default planner).
 *
 * <ol>
 *   <li><b>Replicas in the spare slots</b> (EPLB's redundant-expert rule, DeepSeek-V3 technical report §3.4 and
 *       github.com/deepseek-ai/EPLB; Lina, Li et al., USENIX ATC 2023, replicates popular experts the same way):
 *       every expert first gets the budget's {@link PlacementBudget#copies() replicas} (min(replicas, instances),
 *       whatever its traffic: availability first, so one instance going never takes an expert's last copy when
 *       replicas ≥ 2); then, while a slot is free, the expert whose copies carry the most (token, expert) pairs each
 *       gets one more copy (never more copies than instances; experts with no traffic get no more). The slots of the
 *       layer's shared expert copies (where the even deal puts them) are kept out. Every spare slot is used: a copy is
 *       what lets the gateway's least-loaded rule absorb a test load that differs from the training load (on the
 *       traces, filling only the slots whose copy would carry more than a mean slot's load balanced worse:
 *       docs/performance.md, "Placement").</li>
 *   <li><b>Greedy packing</b>: copies heaviest first, each onto an instance with a free slot that does not hold the
 *       expert yet, within the load cap ({@code (1 + 1%) ×} the mean instance load, at least the copy itself),
 *       choosing the instance with the most affinity: tokens that chose this expert together with the experts
 *       already there (within-layer co-activation: a token's top-k on one instance is one message instead of
 *       several) plus, weighted {@link #INTER_LAYER_WEIGHT}, tokens that came to it from the experts this instance
 *       holds at the previous layer (ExFlow's inter-layer affinity, Yao et al., IPDPS 2024, arXiv:2401.08383: a
 *       token that stays on its instance between layers crosses no link). Ties: least loaded, fewest experts,
 *       lowest index (deterministic).</li>
 *   <li><b>Balance repair</b>, then <b>local search</b> (Kernighan–Lin style pairwise swaps of copies, empty slots
 *       included, so moves too): a swap is taken when it raises the affinity and leaves both instances within the
 *       cap (or no worse than the more loaded of the two was), until a pass changes nothing.</li>
 *   <li><b>Replay</b> ({@link ReplayRefinement}; not in {@value #STATS_ONLY_NAME}): where the layer's training rows
 *       are few enough, hill climbing scored by replaying the gateway's replica rule over them.</li>
 * </ol>
 *
 * <p><b>Failure domains</b> ({@link FailureDomains}: on Kubernetes the nodes): the copies of one expert go to distinct
 * domains whenever enough of them have room, so one node going never takes every copy of an expert. Step 2 first
 * prefers the instance whose domain holds the fewest copies of the expert (above the load cap: availability before
 * balance), and when only instances in domains that hold it have a free slot while another domain has none, moves a
 * copy of another expert out of the way ({@code makeRoomInDomain}); steps 3 and 4 take no move that makes an expert
 * span fewer domains than it could ({@link DomainSpread}). Where the domains have no room the copies share one: never
 * a failure. With every instance its own domain (nothing known) every step is exactly as without domains.
 *
 * <p>Pair weights follow the gateway's rule: a token's experts are placed best first, so expert b joins a on a
 * shared instance only when a's chosen copy is there ({@code pairWeights}).
 *
 * <p>The expected load of a copy is the expert's load divided by its copies; the gateway's replica rule
 * (prefer an instance the token already visits, else the least loaded) splits it less evenly, which
 * {@link PlacementEval} measures. Steps 1–3 cost O(passes × (N × S)²) per layer with O(1) per swap (per-instance
 * affinity sums are kept up to date), so 256 experts × 60 layers × 64 instances plans in well under the 2 s goal
 * ({@code moemesh bench planner}); the replay is bounded by {@link ReplayRefinement#WORK_BUDGET} per layer and
 * skipped beyond it (as at that size).
 */
public final class AffinityPlanner implements PlacementPlanner {
    public static final String NAME = "affinity";
    /** The same packing without the replay step: statistics only (what a router has once rows are too many). */
    public static final String STATS_ONLY_NAME = "affinity-stats";
    /** Weight of one inter-layer transition against one within-layer co-activation (fan-out first). */
    static final double INTER_LAYER_WEIGHT = 0.5;
    /** Load cap above the mean instance load: the slowest instance gates every layer. */
    static final double LOAD_TOLERANCE = 0.01;

    private final boolean replay;

    /** The default planner: packing from the statistics, then the replay where it is affordable. */
    public AffinityPlanner() {
        this(true);
    }

    /** @param replay whether to refine affordable layers by replaying the rows ({@link ReplayRefinement}) */
    public AffinityPlanner(boolean replay) {
        this.replay = replay;
    }

    @Override
    public String name() {
        return replay ? NAME : STATS_ONLY_NAME;
    }

    @Override
    public Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds,
                          FailureDomains domains) {
        PlacementPlanners.requireIds(budget, instanceIds, domains);
        int n = budget.instances();
        int slots = budget.slotsPerLayer(stats.layers(), stats.experts());
        int[][][] holders = new int[stats.layers()][][];
        boolean[][] previous = null;
        EvenDeal deal = new EvenDeal(domains);
        for (int l = 0; l < stats.layers(); l++) {
            double[][] transitionsIn = l == 0 ? null : stats.transitions()[l - 1];
            int[] shared = new int[budget.sharedCopies()];
            for (int r = 0; r < shared.length; r++) {
                shared[r] = deal.holder(stats.experts(), stats.firstLayer() + l, r);
            }
            LayerPacking p = new LayerPacking(n, slots, stats.load()[l], stats.coactivation()[l], previous, transitionsIn,
                    domains, budget.copies(), shared);
            p.pack();
            int[][] rows = stats.rows()[l];
            if (replay && ReplayRefinement.affordable(n, slots, stats.experts(), rows)) {
                ReplayRefinement.refine(n, slots, stats.experts(), rows, p.slot, domains, budget.copies());
                p.rebuildHolds();
            }
            holders[l] = p.holders();
            previous = p.holds;
        }
        return new Placement(instanceIds, stats.firstLayer(), holders);
    }
}
