package io.moemesh.gateway.config;

import io.moemesh.gateway.kvcache.RemotePrefixes;
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
 * @param endpoint           the kvcache-service's gRPC address, {@code host:port}; empty (the default) = not used
 * @param fetchTimeout       how long an admission (or a swapped-out sequence's resume) waits for its blocks from
 *                           the service (Lookup and Get; for a resume, its swap-out's writes too) before it computes
 *                           them instead: > 0, default 2s
 * @param minFetchBlocks     fewest missing full blocks worth a round trip to the service: >= 1, default 1
 * @param writeBackQueueBlocks blocks waiting to be written back at most: >= 1, default 256; beyond it a block is
 *                           dropped (counted in {@code moemesh_gateway_kvcache_writeback_dropped_blocks_total})
 * @param putTimeout         deadline of one Put stream (up to 16 blocks): > 0, default 10s
 * @param rememberedBlocks   block hashes remembered as stored by the service (not sent again) with the CRC32C of
 *                           their payload (checked when fetched back): >= 1, default 65536
 * @param fetchThreads       threads that run fetches (blocking calls, off the engine thread): >= 1, default 4
 * @param preemption         {@code auto} (default: swap out a preempted sequence when restoring its blocks is
 *                           predicted faster than recomputing them, from measured rates), {@code recompute} or
 *                           {@code swap} (force either)
 * @param drainTimeout       at shutdown, how long queued write-backs may still be sent: >= 0, default 10s
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
        @DefaultValue("10s") Duration drainTimeout) {
    private static final String PREFIX = "moemesh.gateway.kvcache.";

    public KvCacheProperties {
        endpoint = endpoint == null ? "" : endpoint.strip();
        if (!endpoint.isEmpty()) {
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
    }

    /** Without an endpoint: not used. */
    public static KvCacheProperties off() {
        return new KvCacheProperties("", null, 1, 256, null, 65536, 4, "auto", null);
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
