package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;

/** An expert's weights made compute-ready by a backend (mapped and paged in, or uploaded to a device). */
public interface LoadedExpert {
    ExpertKey key();

    /** Bytes of weights this expert occupies while resident (what the memory budget counts). */
    long byteSize();
}
