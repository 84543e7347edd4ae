package io.moemesh.cli.bench;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.kvcache.tier.PutResult;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.service.kvcache.GetBlocks;
import io.moemesh.service.kvcache.GetReply;
import io.moemesh.service.kvcache.KvGetWire;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The restore bench's data and its two read paths. {@link #fill} writes {@code prefixes} sequences of
 * {@code prefixBlocks} blocks of random K/V into a real {@link SsdTier} (as the kvcache-service's SSD tier stores
 * them: one record with its CRC32C per block, appended to segment files), forced. Then the prefixes are restored
 * in order, block 0 first, as a gateway asks for them:
 * <ul>
 *   <li>{@link #restoreFromTier}: {@link SsdTier#get} per block, one thread (the read, the CRC32C check, the
 *       block);</li>
 *   <li>{@link #restoreOverGrpc}: the service's {@code Get} stream on loopback, one call per prefix, over the same
 *       tier under a DRAM tier as the service wires it ({@link TieredKvStore}; a whole-prefix restore promotes
 *       only into free DRAM), served by the service's own {@link KvCacheGrpcService} on a Netty server; the client
 *       reads the replies as the gateway's {@code KvCacheClient} does ({@link KvGetWire}'s marshaller parses each
 *       chunk from gRPC's buffers into the block's array, {@link GetBlocks} checks the contract).</li>
 * </ul>
 */
final class KvRestoreRuns implements AutoCloseable {
    private final KvLayout layout;
    private final SsdTier tier;
    private final List<List<BlockKey>> prefixes = new ArrayList<>();
    private final List<List<BlockKey>> warmup = new ArrayList<>();
    private final ModelFingerprint fingerprint;
    private final int numHeads;

    private KvRestoreRuns(KvLayout layout, SsdTier tier, ModelFingerprint fingerprint, int numHeads) {
        this.layout = layout;
        this.tier = tier;
        this.fingerprint = fingerprint;
        this.numHeads = numHeads;
    }

    /**
     * Writes {@code warmupPrefixes} prefixes of {@code prefixBlocks} blocks (for the JIT to compile both read paths
     * before they are timed; never timed), then {@code totalBlocks} blocks in prefixes of {@code prefixBlocks} (the
     * last may be shorter) into a new SSD tier in {@code dir} (emptied first), and forces them.
     *
     * @param numHeads the model's query heads (the served model's Attend shape; not used by Get)
     */
    static KvRestoreRuns fill(Path dir, KvLayout layout, int numHeads, long totalBlocks, int prefixBlocks,
                              int warmupPrefixes) throws IOException {
        deleteSegments(dir);
        Files.createDirectories(dir);
        ModelFingerprint fp = ModelFingerprint.of(sha256("moemesh bench kvcache-restore " + layout));
        SsdTier tier = SsdTier.open(SsdConfig.defaults(dir, Long.MAX_VALUE / 2).withFsync(FsyncPolicy.NEVER), layout,
                fp, new LruPolicy());
        KvRestoreRuns runs = new KvRestoreRuns(layout, tier, fp, numHeads);
        SplittableRandom random = new SplittableRandom(11);
        for (int w = 0; w < warmupPrefixes; w++) {
            runs.warmup.add(runs.write(random, prefixBlocks, -1 - w));
        }
        long written = 0;
        while (written < totalBlocks) {
            int n = (int) Math.min(prefixBlocks, totalBlocks - written);
            runs.prefixes.add(runs.write(random, n, written));
            written += n;
        }
        tier.sync();
        return runs;
    }

    private List<BlockKey> write(SplittableRandom random, int n, long first) {
        List<BlockKey> keys = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            byte[] k = new byte[BlockKey.BYTES];
            random.nextBytes(k);
            BlockKey key = BlockKey.of(k);
            ByteBuffer data = ByteBuffer.allocate(layout.bytesPerBlock());
            while (data.remaining() >= Long.BYTES) {
                data.putLong(random.nextLong());
            }
            PutResult r = tier.put(KvBlock.wrapOwned(key, layout, data.flip()), AccessHint.atChainPosition(i));
            if (r != PutResult.STORED) {
                throw new IllegalStateException("storing bench block " + i + " of the prefix at " + first
                        + " answered " + r);
            }
            keys.add(key);
        }
        return keys;
    }

    /** The segment files (what the page cache must not hold before a restore). */
    List<Path> files() throws IOException {
        try (Stream<Path> s = Files.list(tier.config().directory())) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    int prefixCount() {
        return prefixes.size();
    }

    /** Every measured prefix (or every warm-up prefix) through {@link SsdTier#get}; returns the bytes restored. */
    long restoreFromTier(boolean warmingUp) {
        long bytes = 0;
        for (List<BlockKey> prefix : warmingUp ? warmup : prefixes) {
            for (int i = 0; i < prefix.size(); i++) {
                KvBlock b = tier.get(prefix.get(i), AccessHint.atChainPosition(i)).orElseThrow(() ->
                        new IllegalStateException("a stored bench block was not found in the SSD tier"));
                bytes += b.sizeBytes();
            }
        }
        return bytes;
    }

    /**
     * Starts the service's gRPC {@code Get} on a loopback port over a {@link TieredKvStore} of {@code dramBytes}
     * above this tier. The tier is closed with the returned server.
     */
    GrpcServer serve(long dramBytes) throws IOException {
        TieredKvStore store = new TieredKvStore(layout, dramBytes, new LruPolicy(), tier, AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
        ServedModels models = new ServedModels(List.of(new ServedModel("bench", fingerprint, numHeads, layout, store,
                tier)));
        KvCacheGrpcService service = new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(),
                models));
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .addService(service).build().start();
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext()
                .flowControlWindow(16 << 20) // the gateway's window to the kvcache-service (KvCacheConfiguration)
                .maxInboundMessageSize(8 << 20).build();
        return new GrpcServer(server, channel, store);
    }

    /** A loopback kvcache.v1 server over the bench's tier, and a channel to it. */
    record GrpcServer(Server server, ManagedChannel channel, TieredKvStore store) implements AutoCloseable {
        @Override
        public void close() throws InterruptedException {
            channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            store.close();
        }
    }

    /**
     * Every measured prefix (or every warm-up prefix) through one {@code Get} call each on {@code grpc}; returns the
     * K/V bytes received.
     */
    long restoreOverGrpc(GrpcServer grpc, boolean warmingUp) {
        BlockLayout wireLayout = BlockLayout.newBuilder().setBlockTokens(layout.blockTokens())
                .setNumLayers(layout.layers()).setNumKvHeads(layout.kvHeads()).setHeadDim(layout.headDim()).build();
        ByteString fp = ByteString.copyFrom(fingerprint.bytes());
        int size = layout.bytesPerBlock();
        MethodDescriptor<GetRequest, GetReply> getMethod = KvGetWire.client(size);
        long bytes = 0;
        for (List<BlockKey> prefix : warmingUp ? warmup : prefixes) {
            GetRequest.Builder req = GetRequest.newBuilder().setModelFingerprint(fp).setLayout(wireLayout);
            prefix.forEach(k -> req.addBlockHashes(ByteString.copyFrom(k.bytes())));
            // The gateway's reader (KvCacheClient.get): the zero-copy reply marshaller and the contract checks.
            Context.CancellableContext call = Context.current().withCancellation();
            int blocks;
            try {
                blocks = call.call(() -> GetBlocks.read(ClientCalls.blockingServerStreamingCall(grpc.channel(),
                        getMethod, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.MINUTES), req.build()),
                        prefix.size(), size).size());
            } catch (Exception e) {
                throw e instanceof RuntimeException re ? re : new IllegalStateException(e);
            } finally {
                call.cancel(null);
            }
            bytes += (long) blocks * size;
            if (blocks != prefix.size()) {
                throw new IllegalStateException("Get returned " + blocks + " of a prefix's " + prefix.size()
                        + " blocks");
            }
        }
        return bytes;
    }

    @Override
    public void close() {
        tier.close();
    }

    /** Removes the tier's files from an earlier run (only segment files and their temporaries). */
    static void deleteSegments(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                if (name.startsWith("seg-")) {
                    Files.delete(p);
                }
            }
        }
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
