package io.moemesh.router.placement;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Which instances fail together: on Kubernetes the pods of one node (a node failure, reboot or drain takes every pod
 * on it at once; the chart runs one expert-service pod per GPU, so a multi-GPU node carries several). The planners put
 * the copies of one expert in distinct domains whenever enough distinct domains have room, so that one node going
 * removes at most one copy of an expert that has several, and the mesh keeps serving every expert while the router
 * re-places; they fall back to sharing a domain only when not, never failing because of it.
 *
 * <p>Domains are numbered 0 .. {@link #count()}-1 in the order of their first instance. An empty or null name is an
 * unknown domain: that instance is its own (so {@link #unknown} behaves exactly as planners did before domains).
 *
 * @param domainOf [instance index] → domain number
 */
public record FailureDomains(int[] domainOf) {

    public FailureDomains {
        domainOf = domainOf.clone();
        int next = 0;
        for (int i = 0; i < domainOf.length; i++) {
            if (domainOf[i] < 0 || domainOf[i] > next) {
                throw new IllegalArgumentException("domains must be numbered in order of first instance from 0, got "
                        + Arrays.toString(domainOf));
            }
            next = Math.max(next, domainOf[i] + 1);
        }
    }

    /** Every one of {@code instances} in its own domain: nothing is known about where they run. */
    public static FailureDomains unknown(int instances) {
        int[] d = new int[instances];
        for (int i = 0; i < instances; i++) {
            d[i] = i;
        }
        return new FailureDomains(d);
    }

    /** From the instances' domain names (e.g. Kubernetes node names) in instance order; null or empty = unknown. */
    public static FailureDomains of(List<String> names) {
        int[] d = new int[names.size()];
        Map<String, Integer> byName = new HashMap<>();
        int next = 0;
        for (int i = 0; i < d.length; i++) {
            String name = names.get(i);
            if (name == null || name.isEmpty()) {
                d[i] = next++;
            } else {
                Integer known = byName.get(name);
                if (known == null) {
                    known = next++;
                    byName.put(name, known);
                }
                d[i] = known;
            }
        }
        return new FailureDomains(d);
    }

    /** [instance index] → domain number (a copy). */
    @Override
    public int[] domainOf() {
        return domainOf.clone();
    }

    public int instances() {
        return domainOf.length;
    }

    /** Distinct domains. */
    public int count() {
        int max = -1;
        for (int d : domainOf) {
            max = Math.max(max, d);
        }
        return max + 1;
    }

    public int of(int instance) {
        return domainOf[instance];
    }

    /** The instances of each domain, domains in number order, instances ascending. */
    public List<List<Integer>> members() {
        List<List<Integer>> out = new ArrayList<>();
        for (int i = 0; i < domainOf.length; i++) {
            if (domainOf[i] == out.size()) {
                out.add(new ArrayList<>());
            }
            out.get(domainOf[i]).add(i);
        }
        return out;
    }

    /**
     * The instance order the even deal walks (its copies go to consecutive positions): the domains interleaved, so
     * that copies on consecutive positions land in distinct domains wherever the domain sizes allow. The domains,
     * largest first (ties: lower number first), are written column by column into rows as many as the largest domain
     * has instances, and read row by row: the instances of one domain land in distinct rows, so two of them are about
     * a row's length apart (the "rearrange k apart" layout). Unknown domains (all distinct) give the identity.
     */
    public int[] interleaved() {
        List<List<Integer>> groups = new ArrayList<>(members());
        groups.sort((a, b) -> Integer.compare(b.size(), a.size())); // stable: equal sizes keep domain order
        int rows = groups.isEmpty() ? 0 : groups.getFirst().size();
        List<List<Integer>> byRow = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            byRow.add(new ArrayList<>());
        }
        int t = 0;
        for (List<Integer> g : groups) {
            for (int i : g) {
                byRow.get(t % rows).add(i);
                t++;
            }
        }
        int[] order = new int[domainOf.length];
        int k = 0;
        for (List<Integer> row : byRow) {
            for (int i : row) {
                order[k++] = i;
            }
        }
        return order;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FailureDomains f && Arrays.equals(domainOf, f.domainOf);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(domainOf);
    }

    @Override
    public String toString() {
        return "FailureDomains" + Arrays.toString(domainOf);
    }
}
