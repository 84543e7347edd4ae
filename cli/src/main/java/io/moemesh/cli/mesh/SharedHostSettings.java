package io.moemesh.cli.mesh;

import java.util.Map;

/**
 * What the local mesh's services get because they share one host's cores: each expert instance keeps to its share
 * of the cores whenever the instances compute at the same moment, and the gateway balances whole experts over the
 * instances (docs/performance.md, "Rerun with whole experts balanced over instances that each hold every expert").
 * A caller's own setting of the same environment variable wins.
 */
final class SharedHostSettings {
    private SharedHostSettings() {
    }

    /** An expert instance's share of this host's cores, at least 1. */
    static int kernelShare(int experts) {
        return Math.max(1, Runtime.getRuntime().availableProcessors() / experts);
    }

    /**
     * A step of many sequences keeps every instance computing at once, and so does a step of a few when every instance
     * holds every expert (the gateway's balanced-experts picker then spreads each token's experts over them): each
     * instance keeps to its share for such batches. With experts split over the instances a token's experts may share
     * one, which then wants every core for its batch of a few tokens.
     */
    static void expert(Map<String, String> env, MeshSpec spec) {
        String share = Integer.toString(kernelShare(spec.experts()));
        env.putIfAbsent("MOEMESH_EXPERT_LARGE_BATCH_KERNEL_THREADS", share);
        env.putIfAbsent("MOEMESH_EXPERT_SMALL_BATCH_KERNEL_THREADS", spec.replicas() == spec.experts() ? share : "0");
    }

    /** Whole experts to the least loaded replica, largest first: a step waits for the busiest instance. */
    static void gateway(Map<String, String> env) {
        env.putIfAbsent("MOEMESH_GATEWAY_DISPATCH_REPLICA_PICKER", "balanced-experts");
    }
}
