package io.moemesh.e2e;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.ModelStats;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.StatsRequest;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * One kvcache-service process from its built jar ({@link MeshHome#KVCACHE_JAR}), alone, over mutual TLS with a CA of
 * its own in {@code <dir>/tls}, its SSD tier in {@code <dir>/ssd} (kept across {@link #kill9()} and
 * {@link #stop()}), started with the launcher's {@link ServiceProcess} as {@code moemesh up} starts it; and a
 * client of it as the gateway would be: blocks of the golden tiny Mixtral (fingerprint {@link ModelFingerprint},
 * keys {@link BlockHash}) with random float32 K/V regenerated from a seed, so a test remembers seeds, not payloads.
 */
final class KvCacheProcess implements AutoCloseable {
    static final Path MODEL = TestModels.dir(TestModels.MIXTRAL);
    static final ModelConfig CONFIG = ModelConfigReader.read(MODEL);
    static final ModelFingerprint FINGERPRINT = ModelFingerprint.of(MODEL);
    static final int BLOCK_TOKENS = 16;
    static final int BLOCK_BYTES = 2 * CONFIG.numLayers() * CONFIG.numKvHeads() * BLOCK_TOKENS * CONFIG.headDim() * 4;
    static final Duration START_TIMEOUT = Duration.ofMinutes(2);

    private final MeshState.Service service;
    private final CertificateDirectory tls;
    private final Path ssdDir;
    private ProcessHandle process;
    private volatile ManagedChannel channel;

    /** @param settings more {@code MOEMESH_KVCACHE_*} variables (e.g. {@code _FSYNC}, {@code _DRAM_BYTES}) */
    KvCacheProcess(Path dir, Map<String, String> settings) {
        this.ssdDir = dir.resolve("ssd");
        this.tls = CertificateDirectory.create(dir.resolve("tls"), List.of("kvcache", "gateway"));
        int[] ports = MeshLauncher.freePorts(3);
        Map<String, String> env = new LinkedHashMap<>(settings);
        // small: the DRAM tier lives on the heap below
        env.putIfAbsent("MOEMESH_KVCACHE_DRAM_BYTES", Integer.toString(4 << 20));
        env.put("MOEMESH_KVCACHE_MODEL_DIRS", MODEL.toString());
        env.put("MOEMESH_KVCACHE_SSD_DIR", ssdDir.toString());
        env.put("MOEMESH_KVCACHE_BLOCK_TOKENS", Integer.toString(BLOCK_TOKENS));
        env.put("MOEMESH_KVCACHE_GRPC_HOST", "127.0.0.1");
        env.put("MOEMESH_KVCACHE_GRPC_PORT", Integer.toString(ports[0]));
        env.put("MOEMESH_KVCACHE_TLS_CERT_CHAIN", tls.certChain("kvcache").toString());
        env.put("MOEMESH_KVCACHE_TLS_PRIVATE_KEY", tls.privateKey("kvcache").toString());
        env.put("MOEMESH_KVCACHE_TLS_CA_BUNDLE", tls.caBundle().toString());
        env.put("SERVER_PORT", Integer.toString(ports[1]));
        env.put("MANAGEMENT_SERVER_PORT", Integer.toString(ports[2]));
        env.put("SERVER_ADDRESS", "127.0.0.1");
        env.put("MANAGEMENT_SERVER_ADDRESS", "127.0.0.1");
        List<String> cmd = new ArrayList<>();
        cmd.add(MeshHome.javaBinary());
        cmd.addAll(MeshLauncher.SERVICE_JVM_FLAGS);
        cmd.addAll(List.of("-Xmx256m", "-jar",
                TestModels.repoRoot().resolve(MeshHome.KVCACHE_JAR).toString()));
        this.service = new MeshState.Service("kvcache", 0, "", ports[0], ports[1],
                dir.resolve("logs").resolve("kvcache.log").toString(), cmd, env, ports[2], 0);
    }

    Path ssdDir() {
        return ssdDir;
    }

    int managementPort() {
        return service.managementPort();
    }

    /** Starts the process and waits until it reports SERVING (its SSD index rebuilt). */
    KvCacheProcess start() {
        process = ServiceProcess.start(service).toHandle();
        ServiceProcess.awaitServing(service, process, Instant.now().plus(START_TIMEOUT), tls.channelCredentials("gateway"));
        // a fresh channel: the old one saw the port refuse connections and would fail calls fast for a while
        if (channel != null) {
            channel.shutdownNow();
        }
        channel = Grpc.newChannelBuilderForAddress("127.0.0.1", service.grpcPort(), tls.channelCredentials("gateway"))
                .build();
        return this;
    }

    /** SIGKILL, as a crash would; returns once it has exited. */
    void kill9() {
        process.destroyForcibly();
        awaitExit();
    }

    /** SIGTERM (it demotes DRAM to SSD and forces its segments); returns once it has exited. */
    void stop() {
        process.destroy();
        awaitExit();
    }

    private void awaitExit() {
        try {
            process.onExit().get(2, TimeUnit.MINUTES);
        } catch (InterruptedException | ExecutionException | TimeoutException e) {
            throw new AssertionError("kvcache-service (pid " + process.pid() + ") did not exit; see " + service.logFile(), e);
        }
    }

    @Override
    public void close() {
        if (process != null && process.isAlive()) {
            process.destroyForcibly();
            awaitExit();
        }
        if (channel != null) {
            channel.shutdownNow();
        }
    }

    ManagedChannel channel() {
        return channel;
    }

    /** One block of a chain: its key, what the service checks the key against, and the seed of its payload. */
    record Block(int position, int[] tokens, BlockHash parent, BlockHash hash, long payloadSeed) {
        ByteString key() {
            return ByteString.copyFrom(hash.bytes());
        }

        /** Random float32 K/V, little-endian, the layout's bytes: the same bytes for the same seed. */
        byte[] payload() {
            Random r = new Random(payloadSeed);
            ByteBuffer b = ByteBuffer.allocate(BLOCK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining()) {
                b.putFloat((float) r.nextGaussian());
            }
            return b.array();
        }
    }

    /** A chain of {@code n} blocks of random tokens (tenant "") from {@code seed}. */
    static List<Block> chain(long seed, int n) {
        Random r = new Random(seed);
        int[] tokens = new int[n * BLOCK_TOKENS];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(CONFIG.vocabSize());
        }
        List<Block> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            BlockHash h = BlockHash.of(parent, tokens, i * BLOCK_TOKENS, BLOCK_TOKENS, FINGERPRINT, "");
            out.add(new Block(i, Arrays.copyOfRange(tokens, i * BLOCK_TOKENS, (i + 1) * BLOCK_TOKENS), parent,
                    h, r.nextLong()));
            parent = h;
        }
        return out;
    }

    static BlockLayout layout() {
        return BlockLayout.newBuilder().setBlockTokens(BLOCK_TOKENS).setNumLayers(CONFIG.numLayers())
                .setNumKvHeads(CONFIG.numKvHeads()).setHeadDim(CONFIG.headDim()).build();
    }

    /** Puts the blocks as one stream (header with the first 4 KiB, then 4 KiB chunks); the answer or the error. */
    PutResponse put(List<Block> blocks) throws InterruptedException, ExecutionException, TimeoutException {
        return put(channel, blocks);
    }

    /** {@link #put(List)} over any channel to a kvcache-service of the golden tiny Mixtral. */
    static PutResponse put(ManagedChannel channel, List<Block> blocks)
            throws InterruptedException, ExecutionException, TimeoutException {
        CompletableFuture<PutResponse> answer = new CompletableFuture<>();
        StreamObserver<PutRequest> s = KvCacheServiceGrpc.newStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES)
                .put(new StreamObserver<>() {
                    @Override
                    public void onNext(PutResponse r) {
                        answer.complete(r);
                    }

                    @Override
                    public void onError(Throwable t) {
                        answer.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                        answer.completeExceptionally(new IllegalStateException("Put ended without an answer"));
                    }
                });
        int chunk = 4096;
        for (Block b : blocks) {
            byte[] p = b.payload();
            for (int off = 0; off < p.length; off += chunk) {
                PutRequest.Builder m = PutRequest.newBuilder().setData(ByteString.copyFrom(p, off, Math.min(chunk, p.length - off)));
                if (off == 0) {
                    PutBlockHeader.Builder h = PutBlockHeader.newBuilder()
                            .setModelFingerprint(ByteString.copyFrom(FINGERPRINT.bytes())).setLayout(layout())
                            .setBlockHash(b.key()).setChainPosition(b.position())
                            .setParentHash(ByteString.copyFrom(b.parent() == null ? new byte[32] : b.parent().bytes()));
                    for (int t : b.tokens()) {
                        h.addTokenIds(t);
                    }
                    m.setHeader(h);
                }
                s.onNext(m.build());
            }
        }
        s.onCompleted();
        return answer.get(1, TimeUnit.MINUTES);
    }

    /** Get's answer reassembled: per requested key the payload, or null for a miss. */
    List<byte[]> get(List<ByteString> keys) {
        return get(channel, keys);
    }

    /** {@link #get(List)} over any channel to a kvcache-service of the golden tiny Mixtral. */
    static List<byte[]> get(ManagedChannel channel, List<ByteString> keys) {
        GetRequest req = GetRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(FINGERPRINT.bytes()))
                .setLayout(layout()).addAllBlockHashes(keys).build();
        Iterator<GetResponse> it = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES).get(req);
        List<byte[]> out = new ArrayList<>();
        ByteArrayOutputStream cur = new ByteArrayOutputStream();
        while (it.hasNext()) {
            GetResponse r = it.next();
            if (r.getIndex() != out.size()) {
                throw new AssertionError("block " + r.getIndex() + " came while " + out.size() + " was due");
            }
            if (!r.getFound()) {
                out.add(null);
                continue;
            }
            if (r.getOffset() != cur.size()) {
                throw new AssertionError("chunk at " + r.getOffset() + " after " + cur.size() + " bytes");
            }
            cur.writeBytes(r.getData().toByteArray());
            if (r.getLast()) {
                out.add(cur.toByteArray());
                cur.reset();
            }
        }
        return out;
    }

    /** Stats of the one served model. */
    ModelStats stats() {
        return stats(channel);
    }

    static ModelStats stats(ManagedChannel channel) {
        return KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES)
                .stats(StatsRequest.getDefaultInstance()).getModels(0);
    }

    /**
     * Flips one byte inside the payload of every record under {@code ssdDir} whose key is {@code key} (found by its
     * 32 bytes in the {@code .kvseg} files); returns how many records it damaged (at least one, else it fails).
     */
    static int flipPayloadByte(Path ssdDir, byte[] key) throws IOException {
        List<Path> segments;
        try (Stream<Path> s = Files.walk(ssdDir)) {
            segments = s.filter(p -> p.getFileName().toString().endsWith(".kvseg")).sorted().toList();
        }
        int flipped = 0;
        for (Path seg : segments) {
            byte[] bytes = Files.readAllBytes(seg);
            for (int at = indexOf(bytes, key, 0); at >= 0; at = indexOf(bytes, key, at + key.length)) {
                // well past the key, length and CRC fields: inside the 16 KiB payload
                long pos = at + key.length + 1000;
                try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
                    f.seek(pos);
                    int b = f.read();
                    f.seek(pos);
                    f.write(b ^ 0x10);
                }
                flipped++;
            }
        }
        if (flipped == 0) {
            throw new AssertionError("no segment under " + ssdDir + " holds the key (segments: " + segments + ")");
        }
        return flipped;
    }

    private static int indexOf(byte[] in, byte[] what, int from) {
        for (int i = from; i <= in.length - what.length; i++) {
            if (in[i] == what[0] && Arrays.equals(in, i, i + what.length, what, 0, what.length)) {
                return i;
            }
        }
        return -1;
    }
}
