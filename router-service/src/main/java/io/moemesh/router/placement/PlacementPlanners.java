package io.moemesh.router.placement;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;

/** The planners by name ({@code --planner NAME}); {@link #DEFAULT} is the best on the traces (docs/performance.md). */
public final class PlacementPlanners {
    public static final String DEFAULT = AffinityPlanner.NAME;

    private static final Map<String, Supplier<PlacementPlanner>> BY_NAME = new TreeMap<>(Map.of(
            RoundRobinPlanner.NAME, RoundRobinPlanner::new,
            AffinityPlanner.NAME, AffinityPlanner::new,
            AffinityPlanner.STATS_ONLY_NAME, () -> new AffinityPlanner(false)));

    private PlacementPlanners() {
    }

    public static PlacementPlanner named(String name) {
        Supplier<PlacementPlanner> p = BY_NAME.get(name);
        if (p == null) {
            throw new IllegalArgumentException("--planner must be one of " + String.join(", ", names()) + ", got \""
                    + name + "\"");
        }
        return p.get();
    }

    public static List<String> names() {
        return List.copyOf(BY_NAME.keySet());
    }

    /** The ids {@code expert-0} .. {@code expert-(n-1)}, as the local mesh names its instances. */
    public static List<String> localIds(int n) {
        List<String> ids = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            ids.add("expert-" + i);
        }
        return ids;
    }

    static void requireIds(PlacementBudget budget, List<String> ids, FailureDomains domains) {
        if (ids.size() != budget.instances()) {
            throw new IllegalArgumentException(budget.instances() + " instances need as many ids, got " + ids.size());
        }
        if (domains.instances() != ids.size()) {
            throw new IllegalArgumentException(ids.size() + " instances need as many failure domains, got "
                    + domains.instances());
        }
    }
}
