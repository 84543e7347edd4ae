package io.moemesh.cli.bench;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.IoHandlerFactory;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.nio.NioIoHandler;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
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
import io.moemesh.service.kvcache.LocalBlockReader;
import io.moemesh.service.kvcache.LocalRestore;
import io.moemesh.service.grpc.LocalPeer;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import io.grpc.ServerInterceptors;
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
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
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
 *   <li>{@link #restoreOverGrpc}: the service's {@code Get} stream on loopback TCP or on a Unix domain socket, one
 *       call per prefix, over the same
 *       tier under a DRAM tier as the service wires it ({@link TieredKvStore}; a whole-prefix restore promotes
 *       only into free DRAM), served by the service's own {@link KvCacheGrpcService} on a Netty server; the client
 *       reads the replies as the gateway's {@code KvCacheClient} does ({@link KvGetWire}'s marshaller parses each
 *       chunk from gRPC's buffers into the block's array, {@link GetBlocks} checks the contract);</li>
 *   <li>{@link #restoreLocally}: as the gateway on the service's host, over a peer-uid domain socket: one
 *       {@code Locate} per prefix and the blocks read from the segment files by the reading thread
 *       ({@link LocalRestore}: coalesced positional reads, each record checked as the service checks it).</li>
 * </ul>
 */
final class KvRestoreRuns implements AutoCloseable {
    private final KvLayout layout;
    private final SsdTier tier;
    private final List<List<BlockKey>> prefixes = new ArrayList<>();
    private final List<List<BlockKey>> warmup = new ArrayList<>();
    private final ModelFingerprint fingerprint;
    private final int numHeads;
    /** The local reads' buffers, reused across prefixes as the gateway's client reuses them. */
    private final LocalBlockReader localReader = new LocalBlockReader();

    private KvRestoreRuns(KvLayout layout, SsdTier tier, ModelFingerprint fingerprint, int numHeads) {
        this.layout = layout;
        this.tier = tier;
        this.fingerprint = fingerprint;
        this.numHeads = numHeads;
    }

    /**
     * The file {@link #claim} writes into the bench's directory: its segment files are the bench's own, which a
     * later run may delete. Segment files in a directory without it are someone else's (a kvcache-service's SSD tier,
     * such as {@code up}'s {@code <state-dir>/kvcache}) and are never deleted.
     */
    static final String MARKER = ".moemesh-bench-kvcache-restore";
    private static final String SEGMENT_PREFIX = "seg-";
    /** The lock file an SSD tier keeps in its directory while it is open (the kvcache-service's DirectoryLock). */
    private static final String TIER_LOCK = ".lock";

    /**
     * Makes {@code dir} the bench's (created if need be, {@link #MARKER} written), before anything in it is written or
     * deleted.
     *
     * @throws IllegalArgumentException when it holds segment files the bench did not write
     */
    static void claim(Path dir) throws IOException {
        if (!Files.isRegularFile(dir.resolve(MARKER))) {
            List<Path> foreign = segments(dir);
            if (!foreign.isEmpty()) {
                throw new IllegalArgumentException("--dir " + dir + " holds " + foreign.size() + " segment file(s) ("
                        + foreign.getFirst().getFileName() + ", ...) this bench did not write, perhaps a "
                        + "kvcache-service's SSD tier; the bench would delete them: name an empty or new directory");
            }
            // A kvcache-service keeps its segments one level down, in <ssd-dir>/<model fingerprint>-b<block tokens>/
            // (up's <state-dir>/kvcache/): the bench would not delete them, but would fill the live service's volume.
            Optional<Path> service = serviceTier(dir);
            if (service.isPresent()) {
                throw new IllegalArgumentException("--dir " + dir + " is a kvcache-service's SSD directory ("
                        + service.get().getFileName() + "/ in it is an SSD tier): the bench would fill that service's "
                        + "volume; name an empty or new directory");
            }
        }
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(MARKER), "segment files of moemesh bench kvcache-restore, deleted by its next "
                + "run\n", StandardCharsets.UTF_8);
    }

    /**
     * Writes {@code warmupPrefixes} prefixes of {@code prefixBlocks} blocks (for the JIT to compile both read paths
     * before they are timed; never timed), then {@code totalBlocks} blocks in prefixes of {@code prefixBlocks} (the
     * last may be shorter) into a new SSD tier in {@code dir} (the bench's own segment files emptied first), and
     * forces them.
     *
     * @param dir      a directory {@link #claim}ed first
     * @param numHeads the model's query heads (the served model's Attend shape; not used by Get)
     * @throws IllegalStateException when {@code dir} was not claimed
     */
    static KvRestoreRuns fill(Path dir, KvLayout layout, int numHeads, long totalBlocks, int prefixBlocks,
                              int warmupPrefixes) throws IOException {
        if (!Files.isRegularFile(dir.resolve(MARKER))) {
            throw new IllegalStateException(dir + " was not claimed by the bench");
        }
        deleteSegments(dir);
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
        return segments(tier.config().directory());
    }

    /**
     * The first immediate subdirectory of {@code dir} holding segment files or an SSD tier's {@code .lock} (a
     * service's tier, which may not have written a segment yet); empty when there is none.
     */
    private static Optional<Path> serviceTier(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(dir)) {
            for (Path sub : s.filter(Files::isDirectory).sorted().toList()) {
                if (!segments(sub).isEmpty() || Files.exists(sub.resolve(TIER_LOCK))) {
                    return Optional.of(sub);
                }
            }
        }
        return Optional.empty();
    }

    /** The segment files in {@code dir} (and their temporaries), by name; none when it does not exist. */
    private static List<Path> segments(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().startsWith(SEGMENT_PREFIX)).filter(Files::isRegularFile)
                    .sorted().toList();
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
     * Starts the service's gRPC {@code Get} over a {@link TieredKvStore} of {@code dramBytes} above this tier, on a
     * loopback port or, with {@code socket}, on that Unix domain socket (epoll), plaintext either way. The server's
     * threads (its event loop and its call executor) are named {@link #SERVICE_THREADS}..., the client's event loop
     * {@link #CLIENT_THREADS}..., so {@link CpuClock} can tell the service's CPU time from the client's in this one
     * process. Closing the returned server demotes what its DRAM tier holds back to this tier, which stays open.
     */
    GrpcServer serve(long dramBytes, Path socket) throws IOException {
        return serve(dramBytes, socket, false);
    }

    /**
     * As {@link #serve(long, Path)}; with {@code peerUid} the domain socket is a peer-uid one, as {@code moemesh up}
     * runs the service's (this uid only, kernel-checked; calls have the identity {@code local-owner}, so the
     * service answers {@code Locate}).
     */
    GrpcServer serve(long dramBytes, Path socket, boolean peerUid) throws IOException {
        TieredKvStore store = new TieredKvStore(layout, dramBytes, new LruPolicy(), tier, AdmissionPolicy.ADMIT_ALL,
                System::nanoTime);
        ServedModels models = new ServedModels(List.of(new ServedModel("bench", fingerprint, numHeads, layout, store,
                tier)));
        KvCacheGrpcService service = new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(),
                models));
        boolean epoll = Epoll.isAvailable();
        if (socket != null && !epoll) {
            throw new IllegalStateException("a Unix domain socket needs Netty's epoll transport, not available here");
        }
        IoHandlerFactory io = epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
        EventLoopGroup serverLoop = new MultiThreadIoEventLoopGroup(1,
                new DefaultThreadFactory(SERVICE_THREADS + "io", true), io);
        EventLoopGroup clientLoop = new MultiThreadIoEventLoopGroup(1,
                new DefaultThreadFactory(CLIENT_THREADS + "io", true), io);
        ExecutorService executor = Executors.newCachedThreadPool(new DefaultThreadFactory(SERVICE_THREADS + "call",
                true));
        NettyServerBuilder sb = socket != null
                ? (peerUid ? NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()),
                        LocalPeer.peerUidServerCredentials("bench " + socket))
                        : NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString())))
                        .channelType(EpollServerDomainSocketChannel.class)
                        .withChildOption(ChannelOption.SO_KEEPALIVE, null) // as GrpcServerLifecycle: no TCP options
                : NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                        .channelType(epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class);
        Server server = sb.bossEventLoopGroup(serverLoop).workerEventLoopGroup(serverLoop).executor(executor)
                .addService(ServerInterceptors.intercept(service, new PeerIdentityInterceptor())).build().start();
        NettyChannelBuilder cb = socket != null
                ? NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                        .channelType(EpollDomainSocketChannel.class).withOption(ChannelOption.SO_KEEPALIVE, null)
                : NettyChannelBuilder.forAddress("127.0.0.1", server.getPort())
                        .channelType(epoll ? EpollSocketChannel.class : NioSocketChannel.class);
        ManagedChannel channel = cb.eventLoopGroup(clientLoop).usePlaintext()
                .flowControlWindow(16 << 20) // the gateway's window to the kvcache-service (KvCacheConfiguration)
                .maxInboundMessageSize(8 << 20).build();
        return new GrpcServer(server, channel, store, tier, List.of(serverLoop, clientLoop), executor);
    }

    /** Name prefix of the bench service's threads (its event loop and its call executor). */
    static final String SERVICE_THREADS = "kvbench-service-";
    /** Name prefix of the bench client's event loop threads (the client's reading thread is the caller's). */
    static final String CLIENT_THREADS = "kvbench-client-";

    /** A kvcache.v1 server over the bench's tier, and a channel to it. */
    record GrpcServer(Server server, ManagedChannel channel, TieredKvStore store, SsdTier tier,
                      List<EventLoopGroup> loops, ExecutorService executor) implements AutoCloseable {
        @Override
        public void close() throws InterruptedException {
            channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            // The tier stays open for the next row (KvRestoreRuns closes it): what was promoted goes back to it, as
            // at the service's shutdown (exclusive tiers), so the next row finds every block on the SSD again.
            store.demoteAll();
            tier.sync();
            for (EventLoopGroup g : loops) {
                g.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            }
            executor.shutdownNow();
        }
    }

    /** The block layout as kvcache.v1 carries it. */
    private BlockLayout wireLayout() {
        return BlockLayout.newBuilder().setBlockTokens(layout.blockTokens()).setNumLayers(layout.layers())
                .setNumKvHeads(layout.kvHeads()).setHeadDim(layout.headDim()).build();
    }

    /**
     * Every measured prefix (or every warm-up prefix) through one {@code Get} call each on {@code grpc}; returns the
     * K/V bytes received.
     */
    long restoreOverGrpc(GrpcServer grpc, boolean warmingUp) {
        BlockLayout wireLayout = wireLayout();
        ByteString fp = ByteString.copyFrom(fingerprint.bytes());
        int size = layout.bytesPerBlock();
        MethodDescriptor<GetRequest, GetReply> getMethod = KvGetWire.client(size);
        long bytes = 0;
        for (List<BlockKey> prefix : warmingUp ? warmup : prefixes) {
            GetRequest.Builder req = GetRequest.newBuilder().setModelFingerprint(fp).setLayout(wireLayout);
            prefix.forEach(k -> req.addBlockHashes(ByteString.copyFrom(k.bytes())));
            // The gateway's reader (KvCacheClient.get): the zero-copy reply marshaller and the contract checks, on
            // the transport thread.
            int blocks = GetBlocks.call(grpc.channel(), getMethod,
                    CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.MINUTES), req.build(), prefix.size(), size)
                    .size();
            bytes += (long) blocks * size;
            if (blocks != prefix.size()) {
                throw new IllegalStateException("Get returned " + blocks + " of a prefix's " + prefix.size()
                        + " blocks");
            }
        }
        return bytes;
    }

    /**
     * Every measured prefix (or every warm-up prefix) restored as the gateway does on the service's host
     * ({@link LocalRestore}: one {@code Locate} per prefix, the SSD blocks read from the segment files by this
     * thread, DRAM blocks through {@code Get}) on {@code grpc}, which must be a peer-uid domain socket; returns the
     * K/V bytes restored.
     *
     * @throws IllegalStateException when a block did not come from the files (the row would measure Get)
     */
    long restoreLocally(GrpcServer grpc, boolean warmingUp) {
        BlockLayout wireLayout = wireLayout();
        ByteString fp = ByteString.copyFrom(fingerprint.bytes());
        int size = layout.bytesPerBlock();
        MethodDescriptor<GetRequest, GetReply> getMethod = KvGetWire.client(size);
        long bytes = 0;
        for (List<BlockKey> prefix : warmingUp ? warmup : prefixes) {
            LocalRestore.Result r = LocalRestore.restore(grpc.channel(), getMethod,
                    CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.MINUTES), fp, wireLayout,
                    prefix.stream().map(BlockKey::bytes).toList(), size, localReader);
            bytes += (long) r.blocks().size() * size;
            if (r.blocks().size() != prefix.size() || r.localBlocks() != prefix.size()) {
                throw new IllegalStateException("Locate + local read returned " + r.blocks().size() + " of a prefix's "
                        + prefix.size() + " blocks, " + r.localBlocks() + " read from the files");
            }
        }
        return bytes;
    }

    @Override
    public void close() {
        tier.close();
    }

    /**
     * Removes the bench's segment files (and their temporaries) from {@code dir}; nothing from a directory the bench
     * has not {@link #claim}ed.
     */
    static void deleteSegments(Path dir) throws IOException {
        if (!Files.isRegularFile(dir.resolve(MARKER))) {
            return;
        }
        for (Path p : segments(dir)) {
            Files.delete(p);
        }
    }

    /** The end of a run that keeps nothing: the bench's segment files and its {@link #MARKER} removed. */
    static void release(Path dir) throws IOException {
        deleteSegments(dir);
        Files.deleteIfExists(dir.resolve(MARKER));
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
