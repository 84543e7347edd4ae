package io.moemesh.cli.bench;

import com.google.protobuf.ByteString;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench kvcache-attend}: the bytes {@code Attend} puts on the wire per decode token, over all layers,
 * next to the bytes of shipping the sequence's KV instead (issue 11, item 7; goal ≤ 1% at 4k context). The real
 * kvcache-service ({@link KvCacheGrpcService} over DRAM and an SSD tier in a temporary directory) runs in this
 * process on a loopback socket; a sequence of {@code --context} positions is stored in it as full blocks, then each
 * decode token sends, per layer, the gateway's request ({@code io.moemesh.gateway.kvcache.AttendOffload}: one query
 * row, its position, the hashes of every stored block) and reads the answer. Counted: the serialized request and
 * response messages plus gRPC's 5-byte message prefix each (HTTP/2 frame and header bytes not counted: they do not
 * grow with the context). KV bytes = 2 · layers · kv_heads · head_dim · 4 · context. The sizes depend only on the
 * model's shape (layers, heads, KV heads, head dim), so no weights are written: the block payloads and queries are
 * random floats and the fingerprint a digest of the shape.
 */
@Command(name = "kvcache-attend", mixinStandardHelpOptions = true,
        description = "Attend bytes on the wire per decode token / bytes of shipping the sequence's KV (real "
                + "kvcache-service in-process; goal <= 1%% at 4k context).")
final class KvcacheAttendBenchCommand implements Callable<Integer> {
    /** gRPC's length-prefixed message header: compressed flag and a 4-byte length. */
    static final int GRPC_PREFIX = 5;

    @Spec
    CommandSpec spec;

    @Option(names = "--model", defaultValue = "M",
            description = "Bench model shape: S or M (docs/performance.md; default ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--context", defaultValue = "4096",
            description = "Positions of the sequence held in the service (whole blocks; default ${DEFAULT-VALUE}).")
    int context;

    @Option(names = "--block-tokens", defaultValue = "16",
            description = "Positions per block, the gateway's block size (default ${DEFAULT-VALUE}).")
    int blockTokens;

    @Option(names = "--tokens", defaultValue = "8", description = "Decode tokens measured (default ${DEFAULT-VALUE}).")
    int tokens;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        BenchOptions.positive("--context", context);
        BenchOptions.positive("--block-tokens", blockTokens);
        BenchOptions.positive("--tokens", tokens);
        if (context % blockTokens != 0) {
            throw new IllegalArgumentException("--context must be a multiple of --block-tokens (" + blockTokens
                    + "), got " + context);
        }
        SynthSpec s = BenchModels.spec(model, SynthDtype.F32);
        int headDim = s.headDim().orElse(s.hidden() / s.heads());
        KvLayout layout = new KvLayout(s.layers(), s.kvHeads(), headDim, blockTokens);
        ModelFingerprint fp = ModelFingerprint.of(sha256("bench kvcache-attend " + s.layers() + "x" + s.heads() + "/"
                + s.kvHeads() + "x" + headDim));
        int blocks = context / blockTokens;
        Path dir = Files.createTempDirectory("moemesh-bench-attend");
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 2L * blocks * layout.bytesPerBlock() + (64L << 20)), layout,
                fp, new LruPolicy());
        TieredKvStore store = new TieredKvStore(layout, 2L * blocks * layout.bytesPerBlock(), new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        ServedModels models = new ServedModels(List.of(new ServedModel(model, fp, s.heads(), layout, store, ssd)));
        GrpcServerLifecycle server = new GrpcServerLifecycle("bench-kvcache", "127.0.0.1", 0,
                InsecureServerCredentials.create(), 64 << 20, Duration.ofMillis(200),
                List.of(new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models))),
                List.of());
        server.start();
        ManagedChannel channel = NettyChannelBuilder.forTarget("127.0.0.1:" + server.port(),
                InsecureChannelCredentials.create()).maxInboundMessageSize(64 << 20).build();
        try {
            BlockLayout wire = BlockLayout.newBuilder().setBlockTokens(blockTokens).setNumLayers(s.layers())
                    .setNumKvHeads(s.kvHeads()).setHeadDim(headDim).build();
            ByteString fingerprint = ByteString.copyFrom(fp.bytes());
            List<ByteString> chain = store(channel, fingerprint, wire, fp, layout, blocks);
            measure(out, channel, fingerprint, wire, chain, s, headDim);
        } finally {
            channel.shutdownNow();
            server.stop();
            models.close();
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        return 0;
    }

    /** Puts {@code blocks} blocks of one chain of random tokens and payloads; returns their hashes, block 0 first. */
    private List<ByteString> store(ManagedChannel channel, ByteString fingerprint, BlockLayout wire,
                                   ModelFingerprint fp, KvLayout layout, int blocks) throws Exception {
        SplittableRandom r = new SplittableRandom(42);
        CompletableFuture<PutResponse> done = new CompletableFuture<>();
        StreamObserver<PutRequest> put = KvCacheServiceGrpc.newStub(channel).put(new StreamObserver<>() {
            @Override
            public void onNext(PutResponse v) {
                done.complete(v);
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                done.complete(PutResponse.getDefaultInstance());
            }
        });
        List<ByteString> chain = new ArrayList<>(blocks);
        BlockHash parent = null;
        byte[] payload = new byte[(int) layout.bytesPerBlock()];
        ByteBuffer floats = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        for (int b = 0; b < blocks; b++) {
            int[] ids = new int[blockTokens];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = 2 + r.nextInt(500);
            }
            BlockHash h = BlockHash.of(parent, ids, 0, blockTokens, fp, "");
            for (int i = 0; i < payload.length; i += Float.BYTES) {
                floats.putFloat(i, (float) r.nextGaussian());
            }
            PutBlockHeader.Builder header = PutBlockHeader.newBuilder().setModelFingerprint(fingerprint).setLayout(wire)
                    .setBlockHash(ByteString.copyFrom(h.bytes())).setParentHash(ByteString.copyFrom(
                            parent == null ? new byte[BlockHash.BYTES] : parent.bytes())).setChainPosition(b);
            for (int id : ids) {
                header.addTokenIds(id);
            }
            put.onNext(PutRequest.newBuilder().setHeader(header).setData(ByteString.copyFrom(payload)).build());
            chain.add(ByteString.copyFrom(h.bytes()));
            parent = h;
        }
        put.onCompleted();
        PutResponse stored = done.get(10, TimeUnit.MINUTES);
        for (int b = 0; b < blocks; b++) {
            PutOutcome o = stored.getResults(b).getOutcome();
            if (o != PutOutcome.PUT_OUTCOME_STORED && o != PutOutcome.PUT_OUTCOME_ALREADY_PRESENT) {
                throw new IllegalStateException("block " + b + " was not stored: " + o);
            }
        }
        return chain;
    }

    private void measure(PrintWriter out, ManagedChannel channel, ByteString fingerprint, BlockLayout wire,
                         List<ByteString> chain, SynthSpec s, int headDim) {
        SplittableRandom r = new SplittableRandom(7);
        var stub = KvCacheServiceGrpc.newBlockingStub(channel);
        long request = 0;
        long response = 0;
        long hashBytes = 0;
        long nanos = 0;
        for (int t = 0; t < tokens; t++) {
            for (int layer = 0; layer < s.layers(); layer++) {
                ByteBuffer q = ByteBuffer.allocate(s.heads() * headDim * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                while (q.hasRemaining()) {
                    q.putFloat((float) r.nextGaussian());
                }
                AttendRequest req = AttendRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(wire)
                        .setLayer(layer).setQuery(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(1)
                                .addShape(s.heads()).addShape(headDim).setData(ByteString.copyFrom(q.array())))
                        .addPositions(context + t).addAllBlockHashes(chain).setFirstBlock(0)
                        .setScale((float) (1 / Math.sqrt(headDim))).build();
                long t0 = System.nanoTime();
                AttendResponse a = stub.withDeadlineAfter(60, TimeUnit.SECONDS).attend(req);
                nanos += System.nanoTime() - t0;
                request += req.getSerializedSize() + GRPC_PREFIX;
                response += a.getSerializedSize() + GRPC_PREFIX;
                for (ByteString h : chain) {
                    hashBytes += 2 + h.size();
                }
            }
        }
        double perToken = (double) (request + response) / tokens;
        long kv = 2L * s.layers() * s.kvHeads() * headDim * Float.BYTES * context;
        out.printf("bench kvcache-attend: model %s (%d layers, %d heads / %d KV heads, head dim %d), context %d "
                        + "(%d blocks of %d), %d decode tokens; real kvcache-service in-process on loopback%n",
                model.toUpperCase(java.util.Locale.ROOT), s.layers(), s.heads(), s.kvHeads(), headDim, context,
                chain.size(), blockTokens, tokens);
        out.println();
        out.println("| per decode token | bytes |");
        out.println("|---|---:|");
        out.printf("| Attend requests (%d layers) | %,.0f |%n", s.layers(), (double) request / tokens);
        out.printf("|   of which block hashes | %,.0f |%n", (double) hashBytes / tokens);
        out.printf("| Attend responses | %,.0f |%n", (double) response / tokens);
        out.printf("| Attend total | %,.0f |%n", perToken);
        out.printf("| the sequence's KV (2 · %d · %d · %d · 4 · %d) | %,d |%n", s.layers(), s.kvHeads(), headDim,
                context, kv);
        out.printf("| **Attend ÷ KV** | **%.3f%%** (goal ≤ 1%%) |%n", 100.0 * perToken / kv);
        out.printf("%nmean Attend round trip per layer: %.2f ms (this machine, loopback; not a latency benchmark)%n",
                nanos / 1e6 / tokens / s.layers());
        out.flush();
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
