package io.moemesh.kvcache.tier;

/** Where a block lives; mirrors {@code kvcache.v1.Tier} (the gRPC adapter maps one to the other). */
public enum TierKind {
    /** Host memory. */
    DRAM,
    /** Local SSD: append-only segment files, CRC32C per block. */
    SSD,
    /** Computational storage: an SSD tier that also computes attention next to the data. */
    CSD
}
