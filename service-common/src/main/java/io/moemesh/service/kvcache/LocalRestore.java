package io.moemesh.service.kvcache;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A restore of a prefix by reading the kvcache-service's segment files on this host: one {@code Locate}, the SSD
 * blocks read by a {@link LocalBlockReader}, and {@code Get} ({@link GetBlocks#call}) for the blocks the service holds
 * in memory and, from the first block whose local read or check failed, for all the rest (the service's own read
 * then checks that record again and drops it when it is damaged: it is then a miss, and the run ends there). The
 * answer is what a {@code Get} of the same hashes answers: the payloads of the leading run of stored blocks, in
 * order, each exactly a block's float32 bytes. Needs the call to arrive as the service's same-host owner (its
 * peer-uid domain socket): elsewhere {@code Locate} is FAILED_PRECONDITION ({@link #isRefusal}).
 */
public final class LocalRestore {
    private static final Logger log = LoggerFactory.getLogger(LocalRestore.class);
    /** Longest lease asked for (ms): the service's bound ({@code LocateRequest.lease_millis}). */
    public static final int MAX_LEASE_MILLIS = 60_000;

    private LocalRestore() {
    }

    /**
     * The restored run and how it was read.
     *
     * @param blocks      the leading run's payloads, block 0 first
     * @param localBlocks of them, read from the segment files
     * @param getBlocks   of them, fetched with Get (in memory, or after a failed local read)
     * @param failedReads local reads that failed their read or check (each followed by a Get from that block on)
     * @param bad         the Get reply that broke the contract and ended the run (at block {@code blocks.size()}),
     *                    or null
     */
    public record Result(List<byte[]> blocks, int localBlocks, int getBlocks, int failedReads,
                         GetBlocks.BadReplyException bad) {
    }

    /**
     * Restores the leading stored run of {@code hashes}.
     *
     * @param get        the Get method with the zero-copy reply marshaller for {@code blockBytes}
     *                   ({@link KvGetWire#client})
     * @param options    the calls' options (their deadline; the lease is the time left, at most
     *                   {@link #MAX_LEASE_MILLIS})
     * @param hashes     the 32-byte block hashes, block 0 first
     * @throws StatusRuntimeException as the calls fail ({@link #isRefusal} for a service that does not serve Locate
     *                                to this caller)
     * @throws GetBlocks.BadReplyException when the run's very first block came through Get and broke the contract
     *                                     (as {@link GetBlocks#call}); a bad Get reply after good blocks, read
     *                                     locally or not, ends the run there instead ({@link Result#bad})
     */
    public static Result restore(Channel channel, MethodDescriptor<GetRequest, GetReply> get, CallOptions options,
                                 ByteString fingerprint, BlockLayout layout, List<byte[]> hashes, int blockBytes,
                                 LocalBlockReader reader) {
        return restore(channel, get, options, fingerprint, layout, hashes, 0, blockBytes, reader);
    }

    /**
     * As {@link #restore(Channel, MethodDescriptor, CallOptions, ByteString, BlockLayout, List, int,
     * LocalBlockReader)}, for {@code hashes} that are a chain's blocks from {@code firstBlock} on (the caller holds
     * the ones before): the Locate says so (LocateRequest.first_block), so the service records each block's use at
     * its true chain position (its eviction order takes a chain's tail first). The same answer whatever it is.
     *
     * @param firstBlock block index (0-based) in the sequence of {@code hashes[0]}
     */
    public static Result restore(Channel channel, MethodDescriptor<GetRequest, GetReply> get, CallOptions options,
                                 ByteString fingerprint, BlockLayout layout, List<byte[]> hashes, int firstBlock,
                                 int blockBytes, LocalBlockReader reader) {
        List<ByteString> wire = new ArrayList<>(hashes.size());
        hashes.forEach(h -> wire.add(ByteString.copyFrom(h)));
        LocateResponse located = ClientCalls.blockingUnaryCall(channel, KvCacheServiceGrpc.getLocateMethod(), options,
                LocateRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout).addAllBlockHashes(wire)
                        .setFirstBlock(firstBlock).setLeaseMillis(leaseMillis(options)).build());
        int present = Math.min(located.getPresentBlocks(), Math.min(located.getBlocksCount(), hashes.size()));
        List<byte[]> out = new ArrayList<>(present);
        int local = 0;
        int viaGet = 0;
        int failed = 0;
        GetBlocks.BadReplyException bad = null;
        int i = 0;
        while (i < present) {
            if (located.getBlocks(i).getWhereCase() == LocatedBlock.WhereCase.EXTENT) {
                LocalBlockReader.Stop stop = reader.read(located, hashes, i, blockBytes, out);
                local += stop.at() - i;
                i = stop.at();
                if (stop.failure() == null) {
                    continue;
                }
                failed++;
                log.warn("local read of a KV block failed ({}): Get from block {} on", stop.failure(), i);
                GetBlocks.Run rest = get(channel, get, options, fingerprint, layout, wire.subList(i, present),
                        blockBytes);
                out.addAll(rest.blocks());
                viaGet += rest.blocks().size();
                bad = rest.bad();
                break;
            }
            int j = i;
            while (j < present && located.getBlocks(j).getWhereCase() != LocatedBlock.WhereCase.EXTENT) {
                j++;
            }
            GetBlocks.Run mem = get(channel, get, options, fingerprint, layout, wire.subList(i, j), blockBytes);
            out.addAll(mem.blocks());
            viaGet += mem.blocks().size();
            if (mem.blocks().size() < j - i) {
                bad = mem.bad();
                break; // gone meanwhile, or a bad reply: the run ends here, as a Get's would
            }
            i = j;
        }
        if (bad != null && out.isEmpty()) {
            throw bad;
        }
        return new Result(out, local, viaGet, failed, bad);
    }

    /** One Get of {@code hashes}: its run, a bad reply returned with it (the blocks read before it are kept). */
    private static GetBlocks.Run get(Channel channel, MethodDescriptor<GetRequest, GetReply> get, CallOptions options,
                                    ByteString fingerprint, BlockLayout layout, List<ByteString> hashes,
                                    int blockBytes) {
        return GetBlocks.run(channel, get, options, GetRequest.newBuilder().setModelFingerprint(fingerprint)
                .setLayout(layout).addAllBlockHashes(hashes).build(), hashes.size(), blockBytes);
    }

    /** The lease to ask for: the calls' time left (ms), within [1, {@link #MAX_LEASE_MILLIS}]. */
    static int leaseMillis(CallOptions options) {
        if (options.getDeadline() == null) {
            return MAX_LEASE_MILLIS;
        }
        long left = options.getDeadline().timeRemaining(TimeUnit.MILLISECONDS);
        return (int) Math.max(1, Math.min(MAX_LEASE_MILLIS, left));
    }

    /**
     * Whether {@code e} says the service does not serve {@code Locate} to this caller at all (not on its peer-uid
     * domain socket, or a service without Locate): the caller should use Get from now on.
     */
    public static boolean isRefusal(StatusRuntimeException e) {
        Status.Code c = e.getStatus().getCode();
        return c == Status.Code.UNIMPLEMENTED || c == Status.Code.FAILED_PRECONDITION
                && String.valueOf(e.getStatus().getDescription()).startsWith("Locate: local reads need");
    }
}
