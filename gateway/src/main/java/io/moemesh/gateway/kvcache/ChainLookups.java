package io.moemesh.gateway.kvcache;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.grpc.Channel;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code Lookup}s of one {@link KvCacheClient}. Why whole chains: the service's policy (the default
 * {@code conversation}) learns from each request's chain, matched from block 0, which conversation it continues and
 * keys its blocks by their chain positions; a Lookup of only the blocks after the gateway's local ones (a next turn
 * whose history is still local asks about its new blocks alone) would look like a first turn, its previous turn never
 * marked continued, and its blocks like heads. So the request carries the whole chain and says how many leading
 * blocks are held here ({@code held_blocks}); the answer counts from there. A sequence asked about again (a resume, a
 * second try at its admission) says {@code repeat}, and a request that fetches nothing is still announced ({@link
 * #announce}), so the policy sees every admitted request once.
 *
 * <p>A service that predates {@code held_blocks} answers counted from block 0 and echoes no {@code counted_from}: that
 * answer is used when it covers the held blocks (their run from block 0 then goes on past them), else the rest is
 * asked about alone; from then on every Lookup to it asks about the blocks after the held ones alone, as before the
 * field, and nothing is announced: exactly what such a service saw before.
 */
final class ChainLookups {
    private static final Logger log = LoggerFactory.getLogger(ChainLookups.class);

    private final Channel channel;
    private final String endpoint;
    private final ByteString fingerprint;
    private final BlockLayout layout;
    /** Whether the service counts Lookups from held_blocks (off for good once one answered without the echo). */
    private final AtomicBoolean heldBlocksHonoured = new AtomicBoolean(true);

    ChainLookups(Channel channel, String endpoint, ByteString fingerprint, BlockLayout layout) {
        this.channel = channel;
        this.endpoint = endpoint;
        this.fingerprint = fingerprint;
        this.layout = layout;
    }

    /**
     * Length of the leading run of {@code chain}'s blocks from {@code held} on that the service stores.
     *
     * @param held   leading blocks of {@code chain} the caller holds (0 .. chain.size())
     * @param repeat the sequence was announced before
     */
    int lookup(List<BlockHash> chain, int held, boolean repeat, Duration deadline) {
        if (held < 0 || held > chain.size()) {
            throw new IllegalArgumentException("held blocks: " + held + " of a chain of " + chain.size());
        }
        if (held > 0 && !heldBlocksHonoured.get()) {
            return lookupAlone(chain.subList(held, chain.size()), deadline);
        }
        LookupResponse r = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).lookup(request(chain, held, repeat));
        int present = r.getPresentBlocks();
        if (held > 0 && r.getCountedFrom() != held) {
            if (heldBlocksHonoured.getAndSet(false)) {
                log.info("the kvcache-service at {} predates Lookup's held_blocks: from now on its Lookups ask about "
                        + "the blocks after the local ones alone, and requests that fetch nothing are not announced",
                        endpoint);
            }
            return present >= held ? Math.min(present - held, chain.size() - held)
                    : lookupAlone(chain.subList(held, chain.size()), deadline);
        }
        return Math.min(present, chain.size() - held);
    }

    /** A Lookup of {@code rest} as a chain of its own (a service that predates held_blocks). */
    private int lookupAlone(List<BlockHash> rest, Duration deadline) {
        int present = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).lookup(request(rest, 0, false)).getPresentBlocks();
        return Math.min(present, rest.size());
    }

    /**
     * A Lookup of the whole chain with every block held (it asks about none), sent without waiting for the answer; a
     * failure is only logged (the request goes on without the service). Nothing for an empty chain, nor to a service
     * that predates held_blocks (it would take the chain as asked about, and its other Lookups are of the rest alone).
     */
    void announce(List<BlockHash> chain, Duration deadline) {
        if (chain.isEmpty() || !heldBlocksHonoured.get()) {
            return;
        }
        Futures.addCallback(KvCacheServiceGrpc.newFutureStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).lookup(request(chain, chain.size(), false)), new FutureCallback<>() {
                    @Override
                    public void onSuccess(LookupResponse r) {
                    }

                    @Override
                    public void onFailure(Throwable t) {
                        log.debug("announcing a chain of {} KV blocks to {} failed: {}", chain.size(), endpoint,
                                t.toString());
                    }
                }, MoreExecutors.directExecutor());
    }

    private LookupRequest request(List<BlockHash> chain, int held, boolean repeat) {
        LookupRequest.Builder req = LookupRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                .setHeldBlocks(held).setRepeat(repeat);
        for (BlockHash h : chain) {
            req.addBlockHashes(ByteString.copyFrom(h.bytes()));
        }
        return req.build();
    }
}
