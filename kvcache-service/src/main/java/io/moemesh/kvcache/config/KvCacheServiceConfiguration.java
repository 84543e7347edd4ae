package io.moemesh.kvcache.config;

import com.sun.management.HotSpotDiagnosticMXBean;
import io.grpc.BindableService;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.StorePolicies;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.CsdTier;
import io.moemesh.kvcache.tier.KvTier;
import io.moemesh.kvcache.tier.OpenReport;
import io.moemesh.kvcache.tier.PayloadEncoding;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdDirectoryLockedException;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Wires the served models' tiers, the gRPC server and the background compaction from {@link KvCacheProperties}.
 * The tiers open (each SSD index rebuilt from its segment files) while the beans are created, before the gRPC
 * server starts: the port is not even bound, let alone SERVING, until every index is rebuilt. On shutdown the
 * server stops first (no new calls, in-flight calls get {@code shutdown-grace}), then compaction, then
 * {@link ServedModels#close()} demotes DRAM to SSD and forces the segments.
 */
@Configuration(proxyBeanMethods = false)
public final class KvCacheServiceConfiguration {
    private static final Logger log = LoggerFactory.getLogger(KvCacheServiceConfiguration.class);

    @Bean(destroyMethod = "close")
    ServedModels servedModels(KvCacheProperties props) {
        props.checkDramFitsHeap(maxHeapBytes());
        return open(props);
    }

    /**
     * The JVM's max heap as configured (MaxHeapSize: -Xmx, or -XX:MaxRAMPercentage of the memory limit). Not
     * {@link Runtime#maxMemory()} where the VM tells it: under the Parallel GC, which the image and {@code moemesh up}
     * run, that reports about 11% less at startup (one survivor space's estimate is left out), which would refuse
     * {@code moemesh up}'s own heap of dram-bytes + 256 MiB for a DRAM tier of a few GiB.
     */
    static long maxHeapBytes() {
        try {
            return Long.parseLong(ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class)
                    .getVMOption("MaxHeapSize").getValue());
        } catch (RuntimeException | LinkageError notHotSpot) {
            return Runtime.getRuntime().maxMemory();
        }
    }

    /**
     * Opens every configured model's tiers: DRAM and SSD budgets are shared evenly, each model's segments live
     * in {@code <ssd-dir>/<fingerprint hex>-b<block-tokens>}.
     *
     * @throws SettingRefusedException naming the property when a share cannot hold one block, when two model
     *                                 directories are the same model, when max-inbound-message-bytes cannot hold a
     *                                 model's largest Attend request, when another service holds a store's ssd-dir,
     *                                 or (naming moemesh.kvcache.orphaned-stores) when the stores no served model uses
     *                                 that it keeps leave the served ones too little room
     *                                 ({@link OrphanedStoresAtStartup})
     */
    static ServedModels open(KvCacheProperties props) {
        int n = props.modelDirs().size();
        Map<ModelFingerprint, Path> fingerprints = new LinkedHashMap<>();
        Map<Path, ModelConfig> configs = new LinkedHashMap<>();
        for (Path dir : props.modelDirs()) {
            ModelConfig c = ModelConfigReader.read(dir); // first, so a model that is not one fails on its config
            configs.put(dir, c);
            props.checkAttendFits(name(dir), KvCacheGrpcService.largestAttendRequestBytes(c.numHeads(), c.headDim(),
                    c.maxPositionEmbeddings(), props.blockTokens()));
            ModelFingerprint fp = ModelFingerprint.of(dir);
            Path other = fingerprints.putIfAbsent(fp, dir);
            // Checked before any tier opens: the second one would share the first one's SSD directory
            // (<ssd-dir>/<fingerprint>-b<block-tokens>) and fail on its lock, blaming ssd-dir.
            if (other != null) {
                throw new SettingRefusedException("moemesh.kvcache.model-dirs", "moemesh.kvcache.model-dirs "
                        + "(MOEMESH_KVCACHE_MODEL_DIRS): " + other + " and " + dir + " are the same model (fingerprint "
                        + fp.hex() + "): configure the model once");
            }
        }
        // Before any tier opens (a rebuild may take minutes): a start refused for the space gives its answer at once,
        // and the stores deleted free their space before the served ones grow.
        Set<Path> stores = new HashSet<>();
        fingerprints.keySet().forEach(fp -> stores.add(storeDir(props, fp)));
        OrphanedStoresAtStartup.settle(props.ssdDir(), stores, props.deleteOrphanedStores(),
                OrphanedStoresAtStartup.footprintBytes(props, n), OrphanedStoresAtStartup.footprintRule(props),
                () -> OrphanedStoresAtStartup.usableBytes(props.ssdDir()));
        List<ServedModel> served = new ArrayList<>();
        try {
            for (Map.Entry<ModelFingerprint, Path> e : fingerprints.entrySet()) {
                served.add(openModel(props, e.getValue(), configs.get(e.getValue()), e.getKey(),
                        props.dramBytes() / n, props.ssdBytes() / n));
            }
            return new ServedModels(served);
        } catch (RuntimeException e) {
            served.forEach(m -> m.store().close());
            throw e;
        }
    }

    /** A model's store folder: {@code <ssd-dir>/<fingerprint hex>-b<block-tokens>}. */
    private static Path storeDir(KvCacheProperties props, ModelFingerprint fp) {
        return props.ssdDir().resolve(fp.hex() + "-b" + props.blockTokens());
    }

    private static ServedModel openModel(KvCacheProperties props, Path dir, ModelConfig c, ModelFingerprint fp,
                                         long dramBytes, long ssdBytes) {
        String name = name(dir);
        KvLayout layout = new KvLayout(c.numLayers(), c.numKvHeads(), c.headDim(), props.blockTokens());
        if (dramBytes < layout.bytesPerBlock()) {
            throw new SettingRefusedException("moemesh.kvcache.dram-bytes", "moemesh.kvcache.dram-bytes: model " + name
                    + "'s share, " + dramBytes
                    + " bytes, cannot hold one block of " + layout.bytesPerBlock() + " bytes (" + layout + ")");
        }
        PayloadEncoding encoding = props.int8() ? PayloadEncoding.INT8 : PayloadEncoding.FLOAT32;
        long record = 64L + encoding.payloadBytes(layout);
        if (ssdBytes < record) {
            throw new SettingRefusedException("moemesh.kvcache.ssd-bytes", "moemesh.kvcache.ssd-bytes: model " + name
                    + "'s share, " + ssdBytes
                    + " bytes, cannot hold one block of about " + record + " bytes (" + layout + ")");
        }
        Path ssdDir = storeDir(props, fp);
        SsdConfig cfg = new SsdConfig(ssdDir, ssdBytes, props.segmentBytes(), props.fsync(), props.fsyncInterval(),
                props.fsyncIntervalBytes(), props.compactionLiveFraction(), encoding);
        // The policy is sized by the model's whole share (DRAM plus SSD blocks: the tiers are exclusive).
        long capacity = dramBytes / layout.bytesPerBlock() + ssdBytes / record;
        StorePolicies policies = props.storePolicy().create((int) Math.min(capacity, Integer.MAX_VALUE / 2));
        SsdTier ssd;
        try {
            ssd = SsdTier.open(cfg, layout, fp, policies.lower());
        } catch (SsdDirectoryLockedException e) {
            throw new SettingRefusedException("moemesh.kvcache.ssd-dir", "moemesh.kvcache.ssd-dir "
                    + "(MOEMESH_KVCACHE_SSD_DIR): " + e.getMessage(), e);
        }
        try {
            OpenReport r = ssd.openReport();
            log.info("model {}: eviction/admission policy {} over about {} blocks", name, props.policy(),
                    capacity);
            log.info("model {} ({}): {}; SSD tier {} rebuilt: {} blocks in {} segments, {} records tombstoned "
                            + "(let go of before the restart), {} checksum failures dropped, {} torn bytes truncated, "
                            + "{} segments quarantined", name, fp.hex(), layout, ssdDir, r.blocks(), r.segments(),
                    r.tombstonedRecords(), r.checksumFailures(), r.tornBytesTruncated(), r.quarantined().size());
            KvTier lower = props.csd() ? new CsdTier(ssd) : ssd;
            TieredKvStore store = new TieredKvStore(layout, dramBytes, policies.dram(), lower, policies.admission(),
                    policies.observer(), System::nanoTime);
            return new ServedModel(name, fp, c.numHeads(), layout, store, ssd);
        } catch (RuntimeException e) {
            ssd.close(); // releases the directory's lock: a start that failed must not keep it
            throw e;
        }
    }

    /** A model's name: its directory's. */
    private static String name(Path dir) {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    /** The gRPC port's credentials (moemesh.kvcache.tls.*): the mesh identity {@code kvcache}. */
    @Bean(destroyMethod = "close")
    MeshCredentials meshCredentials(KvCacheProperties props) {
        MeshCredentials credentials = MeshCredentials.load(props.tls(), "moemesh.kvcache.tls");
        if (!credentials.isMtls()) {
            log.warn("moemesh.kvcache.tls.mode=plaintext: gRPC without TLS; anyone who reaches the port can read and "
                    + "write blocks");
        }
        return credentials;
    }

    @Bean
    KvCacheMetrics kvCacheMetrics(MeterRegistry registry, ServedModels models) {
        return new KvCacheMetrics(registry, models);
    }

    @Bean
    KvCacheGrpcService kvCacheGrpcService(KvCacheProperties props, ServedModels models, KvCacheMetrics metrics) {
        return new KvCacheGrpcService(models, metrics, props.maxPutStreams());
    }

    /**
     * SERVING from its start: the tiers it serves are open (their indexes rebuilt) before it is created. With
     * {@code grpc-unix-socket} it listens on that domain socket too (same services and credentials).
     */
    @Bean
    GrpcServerLifecycle grpcServer(KvCacheProperties props, KvCacheGrpcService service, MeshCredentials credentials) {
        GrpcServerLifecycle server = new GrpcServerLifecycle("kvcache-service", props.grpcHost(), props.grpcPort(),
                credentials.server(), props.maxInboundMessageBytes(), props.shutdownGrace(),
                List.<BindableService>of(service), List.of(new PeerIdentityInterceptor()));
        // A gateway on this host restores over the domain socket (no TCP/IP stack per byte); the TCP port stays.
        return props.grpcUnixSocket() == null ? server
                : server.alsoOnUnixSocket(props.grpcUnixSocket(), "moemesh.kvcache.grpc-unix-socket",
                        props.unixSocketSecurity(), "moemesh.kvcache.unix-socket-security");
    }

    @Bean
    KvCacheBackground kvCacheBackground(KvCacheProperties props, ServedModels models) {
        return new KvCacheBackground(props, models);
    }
}
