package io.moemesh.cli.mesh;

import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How {@code up} configures the kvcache-service: its environment (as a pod's) and heap; how long {@code down} lets it
 * persist follows from that environment (MeshShutdown.kvcacheStopGrace). Capacities are laptop-sized; the caller's
 * {@code MOEMESH_KVCACHE_DRAM_BYTES} / {@code MOEMESH_KVCACHE_SSD_BYTES} (and every other {@code MOEMESH_KVCACHE_*}
 * setting it exports, e.g. {@code _FSYNC}) win, except what the mesh itself decides: model, SSD directory, block
 * size, address and TLS files. Settings are found under every name the service's relaxed binding reads
 * ({@link SpringEnvironment}): the heap follows the DRAM tier the service will have, also when the caller wrote
 * {@code MOEMESH_KVCACHE_DRAMBYTES} or passed {@code --jvm-option=-Dmoemesh.kvcache.dram-bytes=...}.
 */
public final class KvCacheSettings {
    /**
     * Tokens per KV block ({@link PrefixCachingKvCache#DEFAULT_BLOCK_TOKENS}). Passed explicitly to the kvcache-service
     * ({@code moemesh.kvcache.block-tokens}, which refuses requests of another size) and to the gateway
     * ({@code moemesh.gateway.kv-block-tokens}), so a change of either service's default cannot make them drift apart.
     */
    static final int BLOCK_TOKENS = PrefixCachingKvCache.DEFAULT_BLOCK_TOKENS;
    /** The service's DRAM tier capacity: MOEMESH_KVCACHE_DRAM_BYTES or another name of it. */
    static final String DRAM_BYTES_PROPERTY = "moemesh.kvcache.dram-bytes";
    /** The DRAM tier under {@code up} unless MOEMESH_KVCACHE_DRAM_BYTES says otherwise: 256 MiB. */
    static final long DRAM_BYTES = 256L << 20;
    /** The SSD tier under {@code up} unless MOEMESH_KVCACHE_SSD_BYTES says otherwise: 4 GiB of live blocks. */
    static final long SSD_BYTES = 4L << 30;
    /** Heap beyond the DRAM tier (which lives on the heap): gRPC buffers, Spring, the SSD index. */
    static final long HEAP_HEADROOM_BYTES = 256L << 20;

    private KvCacheSettings() {
    }

    /**
     * The service's environment, TLS files aside: the caller's {@code settings}, the mesh's model, SSD directory
     * ({@link MeshSpec#kvcacheDir()}), block size and loopback port, the default capacities unless set; with
     * {@code socket} (the mesh's domain-socket transport) the service listens on that socket too, which the gateway
     * then uses ({@link #endpoint}): a restore skips the TCP/IP stack. The TCP port stays (readiness, tools).
     */
    static Map<String, String> environment(Map<String, String> settings, MeshSpec spec, int grpcPort, Path socket) {
        Map<String, String> env = new LinkedHashMap<>(settings);
        // What the mesh decides goes in under every name the service reads (a caller's other spelling would win).
        SpringEnvironment.put(env, "moemesh.kvcache.model-dirs", spec.model().toString());
        // kept across down / up: the index is rebuilt from its segments at startup (SERVING only after that)
        SpringEnvironment.put(env, "moemesh.kvcache.ssd-dir", spec.kvcacheDir().toString());
        SpringEnvironment.put(env, "moemesh.kvcache.block-tokens", Integer.toString(BLOCK_TOKENS));
        SpringEnvironment.putIfAbsent(env, DRAM_BYTES_PROPERTY, Long.toString(DRAM_BYTES));
        SpringEnvironment.putIfAbsent(env, "moemesh.kvcache.ssd-bytes", Long.toString(SSD_BYTES));
        SpringEnvironment.put(env, "moemesh.kvcache.grpc-host", "127.0.0.1");
        SpringEnvironment.put(env, "moemesh.kvcache.grpc-port", Integer.toString(grpcPort));
        if (socket == null) {
            SpringEnvironment.remove(env, UNIX_SOCKET_PROPERTY);
        } else {
            SpringEnvironment.put(env, UNIX_SOCKET_PROPERTY, socket.toString());
        }
        return env;
    }

    /** The service's setting of its domain socket ({@code moemesh.kvcache.grpc-unix-socket}). */
    static final String UNIX_SOCKET_PROPERTY = "moemesh.kvcache.grpc-unix-socket";
    static final String UNIX_SOCKET = SpringEnvironment.conventionalName(UNIX_SOCKET_PROPERTY);

    /**
     * The endpoint the gateway (and {@code up}'s report) uses for the service {@code kv}: {@code unix:///path} when
     * it listens on a domain socket, else its loopback {@code HOST:PORT}.
     */
    public static String endpoint(MeshState.Service kv) {
        String socket = kv.environment().get(UNIX_SOCKET);
        return socket == null ? kv.grpcEndpoint() : InstanceEndpoint.unix(Path.of(socket)).target();
    }

    /**
     * -Xmx of the service: its DRAM tier (on the heap) plus {@link #HEAP_HEADROOM_BYTES}, in MiB (512m by default).
     * The tier is the one the service binds: a {@code -Dmoemesh.kvcache.dram-bytes} among {@code jvmOptions} (the
     * options {@code up --jvm-option} gives every service; also as {@code -Dmoemesh.kvcache.dramBytes}), which
     * Spring prefers to the environment, else the first of its names that {@code env} has ({@link SpringEnvironment}).
     *
     * @throws IllegalArgumentException naming the option or variable when that is not a positive number of bytes
     */
    static String heap(Map<String, String> env, List<String> jvmOptions) {
        Map.Entry<String, String> setting = SpringEnvironment.find(jvmOptions, env, DRAM_BYTES_PROPERTY)
                .orElse(Map.entry(SpringEnvironment.conventionalName(DRAM_BYTES_PROPERTY), String.valueOf(DRAM_BYTES)));
        String value = setting.getValue();
        long dram;
        try {
            dram = Long.parseLong(value.strip());
        } catch (NumberFormatException e) {
            dram = -1;
        }
        if (dram <= 0 || dram > (1L << 50)) {
            throw new IllegalArgumentException(setting.getKey() + " must be a positive number of bytes, got " + value);
        }
        return ((dram + HEAP_HEADROOM_BYTES + (1 << 20) - 1) >> 20) + "m";
    }
}
