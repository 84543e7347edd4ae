package io.moemesh.expert.backend;

/**
 * How many kernel threads (the computing thread included) the cpu backend splits one ExpertBatch over, by the
 * batch's size; 0 = every core ({@code moemesh.kernel.threads}), what an instance with cores of its own wants.
 * Instances that share a host's cores (the local mesh) should each keep to their share whenever they compute at the
 * same moment, or the host runs more kernel threads than cores and a region's caller spins while a descheduled
 * helper finishes its chunk. A step of many sequences keeps every instance computing at once; a step of one to a
 * few sequences does too when the gateway spreads each token's experts over the instances (every instance holding
 * every expert, the {@code balanced-experts} replica picker), but not when a token's experts sit on one instance,
 * which then wants every core. Hence two bounds.
 *
 * @param smallBatches bound for batches of at most {@link CpuExpertBackend#INLINE_MAX_TOKENS} tokens (decoding one to
 *                     a few sequences); 0 = every core
 * @param largeBatches bound for larger batches (a step of many sequences, a prefill); 0 = every core
 */
public record KernelThreads(int smallBatches, int largeBatches) {

    /** Every batch on every core. */
    public static final KernelThreads EVERY_CORE = new KernelThreads(0, 0);

    public KernelThreads {
        if (smallBatches < 0 || largeBatches < 0) {
            throw new IllegalArgumentException("kernel threads must be >= 0 (0 = every core), got " + smallBatches
                    + " for small batches and " + largeBatches + " for large ones");
        }
    }

    /** The bound for a batch of {@code tokens} tokens; 0 = every core. */
    int forTokens(int tokens) {
        return tokens > CpuExpertBackend.INLINE_MAX_TOKENS ? largeBatches : smallBatches;
    }
}
