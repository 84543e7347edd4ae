package io.moemesh.kvcache.support;

import com.google.protobuf.ByteString;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The test mesh of the kvcache-service tests: certificates of one mesh CA ({@code kvcache} and {@code gateway}),
 * the service's arguments over the tiny Mixtral, and a client that puts and gets whole blocks as the gateway would
 * (hashes from {@link BlockHash}, payload in 256 KiB chunks).
 */
public final class KvTestMesh {
    public static final Path MODEL_DIR = TestModels.dir(TestModels.MIXTRAL);
    public static final ModelConfig CONFIG = ModelConfigReader.read(MODEL_DIR);
    public static final ModelFingerprint FINGERPRINT = ModelFingerprint.of(MODEL_DIR);
    public static final int CHUNK = 256 * 1024;
    private static CertificateDirectory certs;

    private KvTestMesh() {
    }

    public static synchronized CertificateDirectory certs() {
        if (certs == null) {
            certs = CertificateDirectory.create(Path.of("target", "test-tls", "mesh"), List.of("kvcache", "gateway"));
        }
        return certs;
    }

    /** {@code --key=value} arguments of a service on free ports with its SSD tier in {@code ssdDir}. */
    public static List<String> args(Path ssdDir, int blockTokens, long dramBytes, long ssdBytes) {
        CertificateDirectory c = certs();
        return List.of("--moemesh.kvcache.model-dirs=" + MODEL_DIR, "--moemesh.kvcache.ssd-dir=" + ssdDir,
                "--moemesh.kvcache.block-tokens=" + blockTokens, "--moemesh.kvcache.dram-bytes=" + dramBytes,
                "--moemesh.kvcache.ssd-bytes=" + ssdBytes, "--moemesh.kvcache.segment-bytes=65536",
                "--moemesh.kvcache.grpc-port=0", "--server.port=0", "--management.server.port=0",
                "--moemesh.kvcache.tls.cert-chain=" + c.certChain("kvcache"),
                "--moemesh.kvcache.tls.private-key=" + c.privateKey("kvcache"),
                "--moemesh.kvcache.tls.ca-bundle=" + c.caBundle());
    }

    /** A channel to the service as the mesh identity {@code gateway}. */
    public static ManagedChannel channel(int port) {
        return Grpc.newChannelBuilderForAddress("localhost", port, certs().channelCredentials("gateway")).build();
    }

    public static KvLayout layout(int blockTokens) {
        return new KvLayout(CONFIG.numLayers(), CONFIG.numKvHeads(), CONFIG.headDim(), blockTokens);
    }

    public static BlockLayout wire(int blockTokens) {
        return BlockLayout.newBuilder().setBlockTokens(blockTokens).setNumLayers(CONFIG.numLayers())
                .setNumKvHeads(CONFIG.numKvHeads()).setHeadDim(CONFIG.headDim()).build();
    }

    /** One block of a sequence: its hash chain position, tokens, hashes and float32 payload. */
    public record Block(int position, int[] tokens, BlockHash parent, BlockHash hash, float[] floats) {
        public ByteString hashBytes() {
            return ByteString.copyFrom(hash.bytes());
        }

        public byte[] payload() {
            ByteBuffer b = ByteBuffer.allocate(floats.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(floats);
            return b.array();
        }
    }

    /** {@code n} blocks of a sequence of random tokens and random K/V ({@code seed} decides both). */
    public static List<Block> sequence(long seed, int n, int blockTokens, String tenant) {
        Random r = new Random(seed);
        int[] tokens = new int[n * blockTokens];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(CONFIG.vocabSize());
        }
        return sequence(tokens, r, n, blockTokens, tenant);
    }

    /** The blocks of {@code tokens} for {@code tenant}, with K/V from {@code r}. */
    public static List<Block> sequence(int[] tokens, Random r, int n, int blockTokens, String tenant) {
        List<Block> out = new ArrayList<>();
        BlockHash parent = null;
        int floats = layout(blockTokens).floatsPerBlock();
        for (int i = 0; i < n; i++) {
            BlockHash h = BlockHash.of(parent, tokens, i * blockTokens, blockTokens, FINGERPRINT, tenant);
            float[] kv = new float[floats];
            for (int j = 0; j < kv.length; j++) {
                kv[j] = (float) r.nextGaussian();
            }
            int[] own = java.util.Arrays.copyOfRange(tokens, i * blockTokens, (i + 1) * blockTokens);
            out.add(new Block(i, own, parent, h, kv));
            parent = h;
        }
        return out;
    }

    public static PutBlockHeader header(Block b, int blockTokens, String tenant) {
        PutBlockHeader.Builder h = PutBlockHeader.newBuilder()
                .setModelFingerprint(ByteString.copyFrom(FINGERPRINT.bytes())).setLayout(wire(blockTokens))
                .setBlockHash(b.hashBytes()).setTenant(tenant).setChainPosition(b.position())
                .setParentHash(ByteString.copyFrom(b.parent() == null ? new byte[32] : b.parent().bytes()));
        for (int t : b.tokens()) {
            h.addTokenIds(t);
        }
        return h.build();
    }

    /** The messages of a Put stream of whole blocks: each header with the first chunk, then the other chunks. */
    public static List<PutRequest> putMessages(List<Block> blocks, int blockTokens, String tenant) {
        List<PutRequest> out = new ArrayList<>();
        for (Block b : blocks) {
            byte[] p = b.payload();
            for (int off = 0; off < p.length; off += CHUNK) {
                PutRequest.Builder m = PutRequest.newBuilder()
                        .setData(ByteString.copyFrom(p, off, Math.min(CHUNK, p.length - off)));
                if (off == 0) {
                    m.setHeader(header(b, blockTokens, tenant));
                }
                out.add(m.build());
            }
        }
        return out;
    }

    /** Sends the messages as one Put stream; the answer or the error. */
    public static CompletableFuture<PutResponse> put(ManagedChannel ch, List<PutRequest> messages) {
        CompletableFuture<PutResponse> answer = new CompletableFuture<>();
        StreamObserver<PutRequest> s = KvCacheServiceGrpc.newStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                .put(observer(answer));
        messages.forEach(s::onNext);
        s.onCompleted();
        return answer;
    }

    public static <T> StreamObserver<T> observer(CompletableFuture<T> answer) {
        return new StreamObserver<>() {
            @Override
            public void onNext(T r) {
                answer.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                answer.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        };
    }

    /** Get's answer reassembled: per requested index the payload, or null for a miss. */
    public static List<byte[]> get(ManagedChannel ch, int blockTokens, List<ByteString> hashes) {
        GetRequest req = GetRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(FINGERPRINT.bytes()))
                .setLayout(wire(blockTokens)).addAllBlockHashes(hashes).build();
        Iterator<GetResponse> it = KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).get(req);
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
            if (r.getData().size() > 1 << 20) {
                throw new AssertionError("a chunk of " + r.getData().size() + " bytes, more than 1 MiB");
            }
            if (r.getOffset() != cur.size()) {
                throw new AssertionError("chunk at " + r.getOffset() + " after " + cur.size() + " bytes");
            }
            cur.writeBytes(r.getData().toByteArray());
            if (r.getLast()) {
                out.add(cur.toByteArray());
                cur = new ByteArrayOutputStream();
            }
        }
        return out;
    }

    public static List<ByteString> hashes(List<Block> blocks) {
        return blocks.stream().map(Block::hashBytes).toList();
    }
}
