package io.moemesh.gateway.config;

import io.moemesh.gateway.kvcache.RemotePrefixes;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.settings.SettingRefusedException;
import java.time.Duration;
import java.util.Locale;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * The gateway's use of the kvcache-service, {@code moemesh.gateway.kvcache.*} (environment variables
 * {@code MOEMESH_GATEWAY_KVCACHE_ENDPOINT}, {@code MOEMESH_GATEWAY_KVCACHE_FETCHTIMEOUT}, ...: dashes dropped). With
 * an endpoint the gateway fetches prompts' cached prefixes from the service at admission, writes its finished and
 * evicted blocks back, and may swap preempted sequences out ({@code io.moemesh.gateway.kvcache.RemotePrefixes}),
 * over mutual TLS with the credentials of {@code moemesh.gateway.tls.*} (required then); without one everything is
 * as before. Needs {@code moemesh.gateway.prefix-caching.enabled=true} (fetched blocks join the prefix cache).
 *
 * @param endpoint           the kvcache-service's gRPC address: {@code host:port} (TCP), or
 *                           {@code unix:///absolute/path.sock}, the domain socket of a service on this host (its
 *                           {@code moemesh.kvcache.grpc-unix-socket}; Linux with Netty's epoll transport; what
 *                           {@code moemesh up} uses): the same calls and credentials without the TCP/IP stack;
 *                           empty (the default) = not used
 * @param fetchTimeout       how long an admission (or a swapped-out sequence's resume) waits for its blocks from
 *                           the service (Lookup and Get; for a resume, its swap-out's writes too) before it computes
 *                           them instead: > 0, default 2s
 * @param minFetchBlocks     fewest missing full blocks worth a fetch from the service (fewer: computed, the chain
 *                           only announced): >= 1, default 1
 * @param writeBackQueueBlocks finished and evicted blocks waiting to be written back at most: >= 1, default 256;
 *                           beyond it a block is dropped (counted in {@code
 *                           moemesh_gateway_kvcache_writeback_dropped_blocks_total}); swap-outs' and offloads' copies
 *                           are not counted in it but have a budget of as many blocks of their own: a swap-out copies
 *                           only its leading blocks that fit (the rest recomputed on resume); offloads copy only
 *                           blocks the service does not hold and hold at most as many copies again ({@code
 *                           AttendOffload})
 * @param putTimeout         deadline of one Put stream (up to 16 blocks): > 0, default 10s
 * @param rememberedBlocks   block hashes remembered as stored by the service (not sent again) with the CRC32C of
 *                           their payload (checked when fetched back): >= 1, default 65536
 * @param fetchThreads       threads that run fetches (blocking calls, off the engine thread): >= 1, default 4
 * @param preemption         {@code auto} (default: swap out a preempted sequence when restoring its blocks is
 *                           predicted faster than recomputing them, from measured rates), {@code recompute} or
 *                           {@code swap} (force either)
 * @param drainTimeout       at shutdown, how long queued write-backs may still be sent: >= 0, default 10s
 * @param attend             long contexts attended over in the service, {@code moemesh.gateway.kvcache.attend.*}
 *                           ({@link Attend}); off by default
 * @param localRead          {@code auto} (default) or {@code off}: with {@code auto} and a {@code unix://} endpoint
 *                           under {@code moemesh.gateway.unix-socket-security=peer-uid} (the service on this host, this
 *                           uid: what {@code moemesh up} runs), a restore asks the service where the blocks are
 *                           ({@code Locate}) and reads its SSD blocks from its segment files itself
 *                           ({@code io.moemesh.service.kvcache.LocalRestore}; DRAM blocks, and every block from a
 *                           failed local read on, still come through {@code Get}); {@code off}, or any other
 *                           endpoint: every block through {@code Get}
 */
public record KvCacheProperties(
        @DefaultValue("") String endpoint,
        @DefaultValue("2s") Duration fetchTimeout,
        @DefaultValue("1") int minFetchBlocks,
        @DefaultValue("256") int writeBackQueueBlocks,
        @DefaultValue("10s") Duration putTimeout,
        @DefaultValue("65536") int rememberedBlocks,
        @DefaultValue("4") int fetchThreads,
        @DefaultValue("auto") String preemption,
        @DefaultValue("10s") Duration drainTimeout,
        @DefaultValue Attend attend,
        @DefaultValue("auto") String localRead) {
    private static final String PREFIX = "moemesh.gateway.kvcache.";

    /**
     * Long contexts keep their recent blocks in the gateway and use the service's {@code Attend} for the rest
     * ({@code io.moemesh.gateway.kvcache.AttendOffload}): a sequence whose final positions reach
     * {@code threshold-tokens} has its full blocks older than its last {@code local-blocks} stored in the service,
     * pinned while it runs, and freed from the gateway's pool; every decode step then sends one {@code Attend} per
     * layer for them. Same tokens either way. Off by default: each step of such a sequence waits a round trip per
     * layer, which pays only when the gateway's KV memory is what limits it (long contexts, many sequences), not on
     * one machine with memory to spare ({@code moemesh up}).
     *
     * @param enabled         offload long contexts and attend over them remotely; needs an {@code endpoint};
     *                        default false
     * @param thresholdTokens final positions of a sequence from which it offloads: >= 1, default 4096
     * @param localBlocks     most recent full blocks such a sequence keeps in the gateway (the block being filled
     *                        is always local): >= 0, default 32
     * @param timeout         deadline of one layer's Attend calls; a call that misses it fails the request (HTTP
     *                        503 / UNAVAILABLE): > 0, default 2s
     * @param offloadTimeout  how long storing and pinning a sequence's blocks may take before it stays local: > 0,
     *                        default 10s
     */
    public record Attend(
            @DefaultValue("false") boolean enabled,
            @DefaultValue("4096") int thresholdTokens,
            @DefaultValue("32") int localBlocks,
            @DefaultValue("2s") Duration timeout,
            @DefaultValue("10s") Duration offloadTimeout) {
        public Attend {
            if (thresholdTokens < 1) {
                throw new IllegalArgumentException(PREFIX + "attend.threshold-tokens must be >= 1, got "
                        + thresholdTokens);
            }
            if (localBlocks < 0) {
                throw new IllegalArgumentException(PREFIX + "attend.local-blocks must be >= 0, got " + localBlocks);
            }
            timeout = positive(timeout, "attend.timeout", Duration.ofSeconds(2));
            offloadTimeout = positive(offloadTimeout, "attend.offload-timeout", Duration.ofSeconds(10));
        }

        /** Off, with the defaults. */
        public static Attend off() {
            return new Attend(false, 4096, 32, null, null);
        }

        /**
         * The startup error for a KV pool in which no sequence would ever offload: one the cache's rule
         * ({@code PrefixCachingKvCache.offloadsWhenFull}) refuses with this offload's policy. A sequence holds at most
         * the pool locally ({@code poolBlocks} blocks of {@code blockTokens}) until something of it is remote, and its
         * first offload starts only once its final positions reach {@code threshold-tokens} with more than
         * {@code local-blocks} full blocks. Otherwise attend would do nothing while the gateway pretended to serve
         * contexts past its pool (the cache then keeps its bound: such prompts are refused, decodes end there).
         */
        public SettingRefusedException neverOffloadsIn(int poolBlocks, int blockTokens) {
            long positions = (long) poolBlocks * blockTokens;
            return new SettingRefusedException(PREFIX + "attend.threshold-tokens", PREFIX + "attend.threshold-tokens "
                    + thresholdTokens + " and " + PREFIX + "attend.local-blocks " + localBlocks + " never offload in "
                    + "the gateway's KV pool of " + poolBlocks + " blocks of " + blockTokens + " tokens (" + positions
                    + " positions; moemesh.gateway.kv-cache-tokens, kv-cache-heap-fraction, kv-block-tokens): a "
                    + "sequence holds at most the pool locally and offloads only once it reaches threshold-tokens with "
                    + "more than local-blocks full blocks, so threshold-tokens must be at most " + positions
                    + " and local-blocks at most " + (poolBlocks - 1) + ", or the pool larger");
        }

        /**
         * Refuses a block size at which a remote prefix could name more blocks than one Attend may ({@code maxHashes},
         * the kvcache-service's limit per request): a long sequence keeps its last {@code local-blocks} full blocks
         * here and names every older one in each Attend, so past the limit the service would refuse every Attend of
         * it (INVALID_ARGUMENT) and fail the request, however well the rest is served. The longest sequence has
         * {@code min(context, max-prompt-tokens + max-new-tokens)} tokens (it ends once it reaches the context or its
         * caps); its KV never holds its last token, and its last step's Attend uses the remote prefix an offload took
         * from the KV before the step before it: at most that length − 2 positions. Small blocks make it: 1-token
         * blocks pass 65,536 hashes from a longest sequence of 65,571 tokens (with the default local-blocks of 32).
         *
         * @param context         the model's max_position_embeddings (the offload lifts the KV pool's bound)
         * @param maxPromptTokens moemesh.gateway.admission.max-prompt-tokens (0 = the context)
         * @param maxNewTokens    moemesh.gateway.admission.max-new-tokens (0 = the context)
         * @param blockTokens     the gateway's block size (moemesh.gateway.kv-block-tokens)
         * @throws IllegalArgumentException naming kv-block-tokens, the longest sequence, the limit and the smallest
         *                                  block size that fits
         */
        public void checkRemotePrefix(int context, int maxPromptTokens, int maxNewTokens, int blockTokens,
                                      int maxHashes) {
            long caps = (long) (maxPromptTokens > 0 ? maxPromptTokens : context)
                    + (maxNewTokens > 0 ? maxNewTokens : context);
            long longest = Math.min(context, caps);
            // The positions the last Attend's remote prefix comes from (PrefixOffloader: remoteBlocks of the KV length).
            long attended = Math.max(0, longest - 2);
            long remote = attended < thresholdTokens ? 0 : Math.max(0, attended / blockTokens - localBlocks);
            if (remote <= maxHashes) {
                return;
            }
            // floor(attended / B) - local-blocks <= maxHashes from this B on.
            long fits = attended / ((long) maxHashes + localBlocks + 1) + 1;
            throw new SettingRefusedException("moemesh.gateway.kv-block-tokens", "moemesh.gateway.kv-block-tokens "
                    + blockTokens + " is too small for "
                    + PREFIX + "attend.enabled: the longest sequence, " + longest + " tokens (the model's context of "
                    + context + " positions, max_position_embeddings, or moemesh.gateway.admission.max-prompt-tokens "
                    + "+ max-new-tokens if fewer), attends in its last step over a remote prefix from " + attended
                    + " positions: " + remote + " remote blocks (those past " + PREFIX + "attend.local-blocks "
                    + localBlocks + "), more than the " + maxHashes + " block hashes one Attend may carry, so the "
                    + "kvcache-service would refuse its every Attend; set kv-block-tokens to at least " + fits
                    + " (and the service's moemesh.kvcache.block-tokens to the same), lower the admission caps, or "
                    + "turn attend off");
        }
    }

    public KvCacheProperties {
        endpoint = endpoint == null ? "" : endpoint.strip();
        if (endpoint.startsWith("unix:")) {
            try {
                InstanceEndpoint.parse(endpoint);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(PREFIX + "endpoint: " + e.getMessage(), e);
            }
        } else if (!endpoint.isEmpty()) {
            RouterProperties.checkEndpoint(endpoint, PREFIX + "endpoint");
        }
        fetchTimeout = positive(fetchTimeout, "fetch-timeout", Duration.ofSeconds(2));
        putTimeout = positive(putTimeout, "put-timeout", Duration.ofSeconds(10));
        drainTimeout = drainTimeout == null ? Duration.ofSeconds(10) : drainTimeout;
        if (drainTimeout.isNegative()) {
            throw new IllegalArgumentException(PREFIX + "drain-timeout must be >= 0, got " + drainTimeout);
        }
        atLeastOne(minFetchBlocks, "min-fetch-blocks");
        atLeastOne(writeBackQueueBlocks, "write-back-queue-blocks");
        atLeastOne(rememberedBlocks, "remembered-blocks");
        atLeastOne(fetchThreads, "fetch-threads");
        preemption = preemption == null ? "auto" : preemption.strip().toLowerCase(Locale.ROOT);
        mode(preemption);
        attend = attend == null ? Attend.off() : attend;
        localRead = localRead == null ? "auto" : localRead.strip().toLowerCase(Locale.ROOT);
        if (!localRead.equals("auto") && !localRead.equals("off")) {
            throw new IllegalArgumentException(PREFIX + "local-read must be auto or off, got '" + localRead + "'");
        }
        if (attend.enabled() && endpoint.isEmpty()) {
            throw new IllegalArgumentException(PREFIX + "attend.enabled needs " + PREFIX + "endpoint (the "
                    + "kvcache-service that stores the offloaded blocks and attends over them)");
        }
    }

    /** Without an endpoint: not used. */
    public static KvCacheProperties off() {
        return new KvCacheProperties("", null, 1, 256, null, 65536, 4, "auto", null, null, null);
    }

    /**
     * Whether restores read the service's segment files ({@link #localRead()}): {@code auto} with a {@code unix://}
     * endpoint reached under {@code peer-uid} security (only there does the service answer {@code Locate}).
     */
    public boolean localReads(UnixSocketSecurity unixSocketSecurity) {
        return localRead.equals("auto") && endpoint.startsWith("unix:")
                && unixSocketSecurity == UnixSocketSecurity.PEER_UID;
    }

    public boolean enabled() {
        return !endpoint.isEmpty();
    }

    /** The preemption mode. */
    public RemotePrefixes.Mode mode() {
        return mode(preemption);
    }

    private static RemotePrefixes.Mode mode(String preemption) {
        return switch (preemption) {
            case "auto" -> RemotePrefixes.Mode.AUTO;
            case "recompute" -> RemotePrefixes.Mode.RECOMPUTE;
            case "swap" -> RemotePrefixes.Mode.SWAP;
            default -> throw new IllegalArgumentException(PREFIX + "preemption must be auto, recompute or swap, got '"
                    + preemption + "'");
        };
    }

    private static Duration positive(Duration d, String name, Duration dflt) {
        if (d == null) {
            return dflt;
        }
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(PREFIX + name + " must be a positive duration, got " + d);
        }
        return d;
    }

    private static void atLeastOne(int v, String name) {
        if (v < 1) {
            throw new IllegalArgumentException(PREFIX + name + " must be >= 1, got " + v);
        }
    }
}
