package io.moemesh.kvcache.config;

import io.moemesh.kvcache.policy.StorePolicy;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Settings of the kvcache-service, {@code moemesh.kvcache.*}: from application.yaml, {@code --key=value} arguments,
 * system properties or environment variables (relaxed binding: {@code moemesh.kvcache.ssd-dir} =
 * {@code MOEMESH_KVCACHE_SSD_DIR}; list entries {@code moemesh.kvcache.model-dirs[0]} =
 * {@code MOEMESH_KVCACHE_MODEL_DIRS_0}, or one comma-separated value).
 *
 * @param modelDirs              Hugging Face model directories whose blocks are stored (config.json gives the layers,
 *                               KV heads, head dim and attention heads; config.json and the weight files give the
 *                               {@code ModelFingerprint} requests name the model by); at least one; required
 * @param blockTokens            tokens per block: must be the gateway's block size (requests carry theirs in
 *                               {@code BlockLayout.block_tokens}; another value is FAILED_PRECONDITION); in [1, 1024]
 *                               (the gateway's {@code moemesh.gateway.kv-block-tokens} range: a larger block could
 *                               never serve a gateway); default 16 (the gateway's default)
 * @param grpcHost               address the gRPC server binds; loopback unless told otherwise
 * @param grpcPort               gRPC port; 0 = a free port (logged at startup); default 9500
 * @param dramBytes              bytes of blocks held in host memory (heap), shared evenly by the models; each share
 *                               must hold one block; default 256 MiB. The JVM's max heap must be larger: startup
 *                               fails naming this property when it exceeds the larger of 3/4 of the max heap and
 *                               the max heap less 256 MiB ({@link #checkDramFitsHeap})
 * @param ssdDir                 directory of the SSD tier's segment files, one subdirectory per model and block size
 *                               ({@code <fingerprint hex>-b<block-tokens>}); kept across restarts (the index is rebuilt
 *                               from it at startup, before the service reports SERVING); required
 * @param ssdBytes               bytes of live records on SSD, shared evenly by the models; default 4 GiB
 * @param segmentBytes           size at which a segment file is sealed and the next begun; at least 4 KiB; default
 *                               256 MiB
 * @param fsync                  when records written to the SSD tier (Puts acknowledged there, demotions from DRAM)
 *                               are forced to stable storage: {@code always} (before the write returns),
 *                               {@code interval} (default) or {@code never}. A kill -9 loses none of them under any
 *                               policy (the bytes are in the page cache), nor a block read back from SSD into DRAM
 *                               (its record is kept until the block leaves the store or is demoted anew, or
 *                               compaction retires its segment); on power loss or an OS crash
 *                               {@code interval} loses at most those written in the last {@code fsync-interval} (or
 *                               last {@code fsync-interval-bytes}), {@code never} whatever the OS had not written.
 *                               No policy covers a Put acknowledged in DRAM ({@code TIER_DRAM}, the usual case): it
 *                               reaches SSD when DRAM's pressure demotes it or at shutdown, and a kill -9 before that
 *                               loses it. A shutdown (SIGTERM) demotes all of DRAM to SSD (a full SSD tier evicts
 *                               by its policy to take them; what it cannot take is lost) and then forces every
 *                               segment with unforced records, under every policy.
 * @param fsyncInterval          {@code interval}: longest time a record written to SSD stays unforced; at least 1ms;
 *                               default 1s
 * @param fsyncIntervalBytes     {@code interval}: force once this many record bytes were appended; > 0; default 64 MiB
 * @param compactionLiveFraction compaction rewrites sealed segments whose live bytes are below this fraction of their
 *                               records; in [0, 1]; default 0.5
 * @param compactionPeriod       how often compaction runs in the background; 0 = never, else at least 1ms; default 1m
 * @param int8                   store new SSD segments as int8 with a scale per row (about 4x smaller, lossy: error at
 *                               most max|row| / 254); off by default (the wire and DRAM stay float32 always). A Put
 *                               of a block with NaN or infinite values is then refused (INVALID_ARGUMENT
 *                               {@code blocks[i].data}): int8 cannot hold them
 * @param csd                    the lower tier is a computational-storage tier (Lookup, Get and Attend report
 *                               {@code TIER_CSD} for its blocks); the files are the same as SSD's; default false
 * @param policy                 the eviction and admission policy of each model's tiers ({@link StorePolicy}):
 *                               {@code conversation} (default: prefix-, turn- and use-aware, shared by DRAM and SSD,
 *                               told each request's chain by its Lookup; the best measured on the Mooncake
 *                               conversation trace, docs/performance.md "KV-cache replay") or {@code lru} (least
 *                               recently used per tier, everything admitted); case-insensitive; another name fails
 *                               startup naming this property
 * @param maxInboundMessageBytes largest gRPC message accepted: bounds one Put chunk (a block may span many); at least
 *                               {@link #MIN_INBOUND_MESSAGE_BYTES} (1 MiB + 64 KiB: the gateway sends a block's Put
 *                               data in 1 MiB chunks, the first with the block's header, so a lower limit would
 *                               fail every write-back of a block larger than it); default 16 MiB. It must also
 *                               hold each served model's largest Attend request, 256 query rows (4 MiB for
 *                               Mixtral-8x7B) and the hashes of up to max_position_embeddings / block-tokens blocks
 *                               (65,536 at most, the most one request may name):
 *                               startup fails naming this property, the model and the bytes it needs
 *                               ({@link #checkAttendFits}); the default holds them for the supported models
 * @param shutdownGrace          how long in-flight calls may finish on shutdown before they are cancelled (a Put
 *                               cancelled midway stores nothing of its incomplete block); default 10s
 * @param tls                    transport security of the gRPC port, {@code moemesh.kvcache.tls.*} ({@link TlsSettings}):
 *                               mutual TLS by default with the mesh identity {@code kvcache} (SAN
 *                               {@code spiffe://moemesh/kvcache}); plaintext only with {@code mode=plaintext}
 * @param grpcUnixSocket         optional absolute path of a Unix domain socket the gRPC server listens on too (in
 *                               addition to the TCP port: the same service, health, reflection and credentials), for a
 *                               gateway on the same host (its {@code moemesh.gateway.kvcache.endpoint}
 *                               {@code unix:///path}; what {@code moemesh up} uses): restores skip the TCP/IP stack.
 *                               Linux with Netty's epoll transport only (startup fails naming this property
 *                               elsewhere). At most 107 bytes (sun_path); a stale socket file left by a killed service
 *                               is removed at start, a live listener there or a path that is not a socket is a
 *                               startup error. Unset (the default): TCP only
 * @param unixSocketSecurity     how the domain socket is secured: {@code peer-uid} (default): plaintext, served only to
 *                               processes of this service's own uid as the kernel reports them (SO_PEERCRED; that uid
 *                               can read every key of the local mesh anyway), the socket's directory accessible to its
 *                               owner only; {@code tls}: the port's mutual TLS on the socket too (needs
 *                               {@code tls.mode=mtls}). The gateway must use the same value
 *                               ({@code moemesh.gateway.unix-socket-security})
 * @param maxPutStreams          Put streams open at once (all clients): one more is RESOURCE_EXHAUSTED naming this
 *                               property, after the streams without a message for 30 s were ended to make room. Each
 *                               buffers at most the block it is receiving, so the buffers take at most this many
 *                               blocks of heap; a gateway keeps one open at a time; at least 1; default 32
 * @param orphanedStores         what startup does with the model stores in {@code ssd-dir} no served model uses (of
 *                               another model, block size or fingerprint version: never read again, yet on the same
 *                               volume): {@code keep} (default) logs each and refuses to start when they leave the
 *                               served stores too little room ({@link OrphanedStoresAtStartup}); {@code delete}
 *                               deletes them, for an ssd-dir this service alone uses. Case-insensitive
 */
@ConfigurationProperties("moemesh.kvcache")
public record KvCacheProperties(
        List<Path> modelDirs,
        @DefaultValue("16") int blockTokens,
        @DefaultValue("127.0.0.1") String grpcHost,
        @DefaultValue("9500") int grpcPort,
        @DefaultValue("268435456") long dramBytes,
        Path ssdDir,
        @DefaultValue("4294967296") long ssdBytes,
        @DefaultValue("268435456") long segmentBytes,
        @DefaultValue("interval") FsyncPolicy fsync,
        @DefaultValue("1s") Duration fsyncInterval,
        @DefaultValue("67108864") long fsyncIntervalBytes,
        @DefaultValue("0.5") double compactionLiveFraction,
        @DefaultValue("1m") Duration compactionPeriod,
        @DefaultValue("false") boolean int8,
        @DefaultValue("false") boolean csd,
        @DefaultValue("conversation") String policy,
        @DefaultValue("16777216") int maxInboundMessageBytes,
        @DefaultValue("10s") Duration shutdownGrace,
        @DefaultValue TlsSettings tls,
        Path grpcUnixSocket,
        @DefaultValue("peer-uid") UnixSocketSecurity unixSocketSecurity,
        @DefaultValue("32") int maxPutStreams,
        @DefaultValue("keep") String orphanedStores) {
    /**
     * Heap the service needs besides the DRAM tier (gRPC buffers, Spring, the SSD index): what {@code moemesh up}
     * adds to dram-bytes for its -Xmx (cli's {@code KvCacheSettings.HEAP_HEADROOM_BYTES}).
     */
    public static final long HEAP_HEADROOM_BYTES = 256L << 20;
    /**
     * Share of a small heap the DRAM tier may take even with less than {@link #HEAP_HEADROOM_BYTES} left: 3/4. The
     * chart's defaults use 71% (4 GiB of 70% of 8 Gi), a plain {@code java -jar} on a 2 GiB machine 50%.
     */
    public static final double HEAP_DRAM_FRACTION = 0.75;

    /**
     * Largest block size accepted: 1024 tokens, the most {@code moemesh.gateway.kv-block-tokens} allows (the service
     * must have the gateway's block size, so a larger one could never serve a gateway).
     */
    public static final int MAX_BLOCK_TOKENS = 1024;
    /**
     * Smallest max-inbound-message-bytes: a Put message of the gateway, 1 MiB of data (its KvCacheClient.CHUNK_BYTES)
     * plus 64 KiB for the block's header (hashes, up to 1024 token ids, the tenant) and framing.
     */
    public static final int MIN_INBOUND_MESSAGE_BYTES = (1 << 20) + (64 << 10);

    public KvCacheProperties {
        modelDirs = modelDirs == null ? List.of() : List.copyOf(modelDirs);
        require(!modelDirs.isEmpty(), "model-dirs (MOEMESH_KVCACHE_MODEL_DIRS) is required: the model directories "
                + "whose blocks are stored");
        require(ssdDir != null && !ssdDir.toString().isBlank(), "ssd-dir (MOEMESH_KVCACHE_SSD_DIR) is required: "
                + "where the SSD tier's segment files live");
        require(blockTokens >= 1 && blockTokens <= MAX_BLOCK_TOKENS, "block-tokens must be in [1, " + MAX_BLOCK_TOKENS
                + "] (the gateway's block size, moemesh.gateway.kv-block-tokens, which is at most " + MAX_BLOCK_TOKENS
                + "), got " + blockTokens);
        require(grpcPort >= 0 && grpcPort <= 65535, "grpc-port must be in [0, 65535], got " + grpcPort);
        require(dramBytes > 0, "dram-bytes must be > 0, got " + dramBytes);
        require(ssdBytes > 0, "ssd-bytes must be > 0, got " + ssdBytes);
        require(segmentBytes >= 4096, "segment-bytes must be >= 4096, got " + segmentBytes);
        require(fsync != null, "fsync must be always, interval or never");
        // At least 1 ms: a shorter one passed "> 0" but became a 0 ms timer period, which failed startup with a bare
        // IllegalArgumentException after every SSD index was rebuilt.
        require(fsyncInterval != null && fsyncInterval.compareTo(Duration.ofMillis(1)) >= 0,
                "fsync-interval must be >= 1ms, got " + fsyncInterval);
        require(fsyncIntervalBytes > 0, "fsync-interval-bytes must be > 0, got " + fsyncIntervalBytes);
        require(compactionLiveFraction >= 0 && compactionLiveFraction <= 1,
                "compaction-live-fraction must be in [0, 1], got " + compactionLiveFraction);
        require(compactionPeriod != null && (compactionPeriod.isZero()
                        || compactionPeriod.compareTo(Duration.ofMillis(1)) >= 0),
                "compaction-period must be 0 (never) or >= 1ms, got " + compactionPeriod);
        try {
            policy = StorePolicy.named(policy).label();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("moemesh.kvcache.policy (MOEMESH_KVCACHE_POLICY): " + e.getMessage());
        }
        require(maxInboundMessageBytes >= MIN_INBOUND_MESSAGE_BYTES, "max-inbound-message-bytes must be >= "
                + MIN_INBOUND_MESSAGE_BYTES + " (the gateway sends Put data in chunks of 1048576 bytes, 1 MiB, plus the "
                + "block's header: every write-back of a larger block would fail), got " + maxInboundMessageBytes);
        require(maxPutStreams >= 1, "max-put-streams must be >= 1, got " + maxPutStreams);
        String orphans = orphanedStores == null ? "keep" : orphanedStores.strip().toLowerCase(Locale.ROOT);
        require(orphans.equals("keep") || orphans.equals("delete"), "orphaned-stores "
                + "(MOEMESH_KVCACHE_ORPHANED_STORES) must be keep or delete, got '" + orphanedStores + "'");
        orphanedStores = orphans;
        require(shutdownGrace != null && !shutdownGrace.isNegative(), "shutdown-grace must be >= 0, got "
                + shutdownGrace);
        unixSocketSecurity = unixSocketSecurity == null ? UnixSocketSecurity.PEER_UID : unixSocketSecurity;
        if (grpcUnixSocket != null) {
            grpcUnixSocket = InstanceEndpoint.socketPath("moemesh.kvcache.grpc-unix-socket "
                    + "(MOEMESH_KVCACHE_GRPC_UNIX_SOCKET)", grpcUnixSocket.toString());
        }
        tls = (tls == null ? new TlsSettings(null, null, null, null, null) : tls).validated("moemesh.kvcache.tls");
    }

    /**
     * Refuses a DRAM tier the heap cannot hold beside the rest of the service: the tier keeps its blocks on the heap
     * (the service runs with -XX:+ExitOnOutOfMemoryError, so a tier that outgrows it ends the process once it
     * fills, long after startup). Allowed: at most the larger of {@link #HEAP_DRAM_FRACTION} of the max heap and the
     * max heap less {@link #HEAP_HEADROOM_BYTES}, so {@code moemesh up}'s heap (dram-bytes + 256 MiB) always fits.
     *
     * @param maxHeapBytes the JVM's max heap (-Xmx, or -XX:MaxRAMPercentage of the container's memory)
     * @throws SettingRefusedException naming the property, the heap and the fix
     */
    public void checkDramFitsHeap(long maxHeapBytes) {
        long allowed = Math.max((long) (maxHeapBytes * HEAP_DRAM_FRACTION), maxHeapBytes - HEAP_HEADROOM_BYTES);
        if (dramBytes > allowed) {
            long needed = Math.min(dramBytes + HEAP_HEADROOM_BYTES, (long) Math.ceil(dramBytes / HEAP_DRAM_FRACTION));
            throw new SettingRefusedException("moemesh.kvcache.dram-bytes", "moemesh.kvcache.dram-bytes "
                    + "(MOEMESH_KVCACHE_DRAM_BYTES): " + dramBytes + " bytes (" + mib(dramBytes) + ") of blocks do not "
                    + "fit the JVM's max heap of " + maxHeapBytes
                    + " bytes (" + mib(maxHeapBytes) + "): the DRAM tier lives on the heap, beside the rest of the "
                    + "service, and may take at most " + allowed + " bytes of it (the larger of 3/4 of the heap and "
                    + "the heap less 256 MiB). Lower dram-bytes to at most " + allowed + ", or raise the heap (-Xmx, "
                    + "or -XX:MaxRAMPercentage and the container's memory limit) to at least " + mib(needed));
        }
    }

    /**
     * Refuses a message limit below a served model's largest Attend request: every Attend offload of a long sequence
     * of that model would fail with RESOURCE_EXHAUSTED (the gateway then keeps it local and ends it at its pool).
     *
     * @param model              the model's name (its directory)
     * @param attendRequestBytes its largest Attend request ({@code KvCacheGrpcService.largestAttendRequestBytes})
     * @throws SettingRefusedException naming the property, the model and the bytes needed
     */
    public void checkAttendFits(String model, long attendRequestBytes) {
        if (maxInboundMessageBytes < attendRequestBytes) {
            throw new SettingRefusedException("moemesh.kvcache.max-inbound-message-bytes",
                    "moemesh.kvcache.max-inbound-message-bytes (MOEMESH_KVCACHE_MAX_INBOUND_MESSAGE_BYTES): "
                    + maxInboundMessageBytes + " bytes cannot hold the largest Attend request of model " + model + ", "
                    + attendRequestBytes + " bytes (256 query "
                    + "rows of its attention heads in f32, and the hashes of a sequence up to its "
                    + "max_position_embeddings): every Attend of a long sequence would fail with RESOURCE_EXHAUSTED; "
                    + "set it to at least " + attendRequestBytes + " (" + mib(attendRequestBytes) + ")");
        }
    }

    private static String mib(long bytes) {
        return ((bytes + (1 << 20) - 1) >> 20) + " MiB";
    }

    /** {@link #orphanedStores} is {@code delete}. */
    public boolean deleteOrphanedStores() {
        return orphanedStores.equals("delete");
    }

    /** The configured {@link #policy}. */
    public StorePolicy storePolicy() {
        return StorePolicy.named(policy);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("moemesh.kvcache." + message);
        }
    }
}
