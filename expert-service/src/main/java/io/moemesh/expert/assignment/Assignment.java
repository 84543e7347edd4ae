package io.moemesh.expert.assignment;

import io.moemesh.model.engine.ExpertKey;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The experts an instance holds for one placement epoch.
 *
 * @param experts ascending by (layer, expert), no duplicates
 */
public record Assignment(long epoch, List<ExpertKey> experts, Set<ExpertKey> lookup) {

    public static Assignment of(long epoch, java.util.Collection<ExpertKey> experts) {
        TreeSet<ExpertKey> sorted = new TreeSet<>(experts);
        return new Assignment(epoch, List.copyOf(sorted), Set.copyOf(sorted));
    }

    public static Assignment empty() {
        return of(0, List.of());
    }

    public boolean holds(ExpertKey key) {
        return lookup.contains(key);
    }
}
