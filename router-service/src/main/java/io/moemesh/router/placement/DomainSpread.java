package io.moemesh.router.placement;

/**
 * How one layer's copies of each expert spread over the failure domains, and the rule every planner move keeps: an
 * expert with c copies should span min(c, D) of the D domains, and no move may take it further from that (its
 * "deficit", min(c, D) minus the domains it spans, never grows). A move of a copy to another instance of the same
 * domain is always allowed, and so, with every instance its own domain ({@link FailureDomains#unknown}), is every move
 * that keeps an instance from holding an expert twice: the planners then behave exactly as without domains. Not
 * thread-safe; add, remove and the move checks are O(1), {@link #underSpread} and {@link #missesADomain} O(domains)
 * (they count the domains an expert spans).
 */
final class DomainSpread {
    private final int[] dom;
    private final int domains;
    /** [domain][expert] copies of the expert on the domain's instances. */
    private final int[][] count;
    /** [expert] copies in all. */
    private final int[] copies;

    DomainSpread(FailureDomains domains, int experts) {
        this.dom = domains.domainOf();
        this.domains = domains.count();
        this.count = new int[this.domains][experts];
        this.copies = new int[experts];
    }

    /** Starts from a layer's slots: slot i × s + k of instance i holds an expert or -1. */
    static DomainSpread of(FailureDomains domains, int experts, int[] slot, int s) {
        DomainSpread d = new DomainSpread(domains, experts);
        for (int k = 0; k < slot.length; k++) {
            if (slot[k] >= 0) {
                d.add(k / s, slot[k]);
            }
        }
        return d;
    }

    void add(int instance, int e) {
        count[dom[instance]][e]++;
        copies[e]++;
    }

    void remove(int instance, int e) {
        count[dom[instance]][e]--;
        copies[e]--;
    }

    /** Copies of {@code e} in the domain of {@code instance}: a planner prefers the instance where this is lowest. */
    int inDomainOf(int instance, int e) {
        return count[dom[instance]][e];
    }

    /** Whether {@code e} spans fewer domains than its copies could: min(copies, domains). */
    boolean underSpread(int e) {
        int spanned = 0;
        for (int[] c : count) {
            if (c[e] > 0) {
                spanned++;
            }
        }
        return spanned < Math.min(copies[e], domains);
    }

    /** Whether some domain holds no copy of {@code e} (where one more copy of it belongs). */
    boolean missesADomain(int e) {
        for (int[] c : count) {
            if (c[e] == 0) {
                return true;
            }
        }
        return false;
    }

    /** Whether moving a copy of {@code e} from instance {@code from} to {@code to} keeps the domains it spans. */
    boolean canMove(int e, int from, int to) {
        return dom[from] == dom[to] || count[dom[to]][e] == 0 || count[dom[from]][e] > 1;
    }

    /**
     * Whether one more copy of {@code e} may go to {@code instance}: not when the expert has fewer copies than there
     * are domains and that domain holds one already (the copy belongs in a domain without one).
     */
    boolean canAdd(int e, int instance) {
        return copies[e] >= domains || count[dom[instance]][e] == 0;
    }

    /**
     * Whether the copy of {@code e} on {@code instance} may go: not when it is the expert's only copy in that domain
     * while the expert has more copies than domains (it would leave the domain although it could span all of them).
     */
    boolean canRemove(int e, int instance) {
        return copies[e] <= domains || count[dom[instance]][e] > 1;
    }
}
