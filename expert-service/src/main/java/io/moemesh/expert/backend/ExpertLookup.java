package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;

/** Where a backend gets the weights of an expert while computing (the resident set: hit, or load on a miss). */
@FunctionalInterface
public interface ExpertLookup {
    LoadedExpert get(ExpertKey key);
}
