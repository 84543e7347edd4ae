package io.moemesh.kvcache.grpc;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.PayloadEncoding;
import io.moemesh.kvcache.tier.RecordExtent;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.kvcache.v1.BlockExtent;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code Locate}: where the longest stored prefix of a chain lies, for a client on this host that reads the SSD
 * records from the segment files itself (the production caches' same-host path: LMCache's local disk backend,
 * Mooncake's local transfer). Through the service's {@code Get} every byte costs the service's CPU (read, CRC,
 * copy into gRPC, the socket, the client's copy out: about 1 s per GiB on two cores, docs/performance.md, "KV-cache
 * restore"); a reader of the files pays only its own read and CRC.
 *
 * <p>Only for the same-host owner ({@link MeshIdentity#LOCAL_OWNER}: the call came over the peer-uid domain socket,
 * from a process the kernel reported as this service's uid, which can read the files anyway). On TCP or a TLS socket
 * the answer is FAILED_PRECONDITION (the deployment, not the request, rules it out), checked before the request.
 */
final class LocateAnswer {
    /** Longest lease a Locate may ask for (ms): enough to open the files; compaction waits at most this long. */
    static final int MAX_LEASE_MILLIS = 60_000;

    private LocateAnswer() {
    }

    static LocateResponse answer(ServedModels models, LocateRequest req) {
        if (!PeerIdentityInterceptor.current().map(MeshIdentity::isLocalOwner).orElse(false)) {
            throw new IllegalStateException("Locate: local reads need the peer-uid domain socket (the service's "
                    + "moemesh.kvcache.grpc-unix-socket with moemesh.kvcache.unix-socket-security=peer-uid, called by a "
                    + "process of the service's uid); this call came over TCP or a TLS socket: use Get");
        }
        ServedModel m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
        List<BlockKey> chain = KvMessages.keys(req.getBlockHashesList(), "block_hashes", 1);
        long lease = Integer.toUnsignedLong(req.getLeaseMillis());
        if (lease < 1 || lease > MAX_LEASE_MILLIS) {
            throw new IllegalArgumentException("lease_millis: " + lease + " is not in [1, " + MAX_LEASE_MILLIS
                    + "] (milliseconds the named segment files must stay)");
        }
        long first = Integer.toUnsignedLong(req.getFirstBlock());
        if (first + chain.size() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("first_block: " + first + " with " + chain.size() + " block_hashes "
                    + "passes chain position 2^31 - 1 (the block index in the sequence of block_hashes[0])");
        }
        List<TieredKvStore.Located> run = m.store().locate(chain, (int) first,
                m.ssd().now() + TimeUnit.MILLISECONDS.toNanos(lease));
        LocateResponse.Builder out = LocateResponse.newBuilder().setPresentBlocks(run.size())
                .setLeaseMillis((int) lease).setLayout(KvMessages.layout(m.layout()));
        Map<String, Integer> paths = new HashMap<>();
        for (TieredKvStore.Located b : run) {
            RecordExtent e = b.extent();
            if (e == null) {
                out.addBlocks(LocatedBlock.newBuilder().setInMemory(true));
                continue;
            }
            String path = e.path().toString();
            Integer segment = paths.get(path);
            if (segment == null) {
                segment = paths.size();
                paths.put(path, segment);
                out.addSegmentPaths(path);
            }
            out.addBlocks(LocatedBlock.newBuilder().setExtent(BlockExtent.newBuilder().setSegment(segment)
                    .setOffset(e.offset()).setLength(e.length()).setCrc32C(e.crc())
                    .setEncoding(e.encoding() == PayloadEncoding.INT8
                            ? io.moemesh.proto.kvcache.v1.PayloadEncoding.PAYLOAD_ENCODING_INT8
                            : io.moemesh.proto.kvcache.v1.PayloadEncoding.PAYLOAD_ENCODING_F32)));
        }
        return out.build();
    }
}
