package io.moemesh.cli.mesh;

import java.util.Map;

/**
 * What the local mesh's services get because they share one host's cores: each expert instance keeps to its share
 * of the cores whenever the instances compute at the same moment, and the gateway balances whole experts over the
 * instances (docs/performance.md, "Rerun with whole experts balanced over instances that each hold every expert").
 * A caller's own setting wins, under any name the service binds it from ({@link SpringEnvironment}: also
 * {@code MOEMESH_GATEWAY_DISPATCH_REPLICAPICKER}); the default is then not added beside it.
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
        SpringEnvironment.putIfAbsent(env, "moemesh.expert.large-batch-kernel-threads", share);
        SpringEnvironment.putIfAbsent(env, "moemesh.expert.small-batch-kernel-threads",
                spec.replicas() == spec.experts() ? share : "0");
    }

    /** Whole experts to the least loaded replica, largest first: a step waits for the busiest instance. */
    static void gateway(Map<String, String> env) {
        SpringEnvironment.putIfAbsent(env, "moemesh.gateway.dispatch.replica-picker", "balanced-experts");
    }
}
