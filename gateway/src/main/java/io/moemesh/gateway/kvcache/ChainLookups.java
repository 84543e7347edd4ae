package io.moemesh.gateway.kvcache;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.grpc.Channel;
import io.grpc.Deadline;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
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
 * asked about alone; from then on its Lookups ask about the blocks after the held ones alone, as before the field,
 * and nothing is announced: exactly what such a service saw before. Not for good: the service may be upgraded in
 * place, so once every {@link #RECHECK_NANOS} the first Lookup with held blocks or announcement sends
 * {@code held_blocks} again, and an answer that echoes it switches back (an announcement's answer without the echo
 * switches the other way, a service replaced by an older one).
 */
final class ChainLookups {
    private static final Logger log = LoggerFactory.getLogger(ChainLookups.class);
    /**
     * Announcements queued or sent and not yet answered, at most: each holds its chain, then its request (about 34
     * bytes per block), until the service answers or its deadline passes, so a slow service would otherwise pile up
     * one per prompt served locally. One more is dropped ({@link Announcement#DROPPED}).
     */
    static final int MAX_ANNOUNCEMENTS_IN_FLIGHT = 64;
    /** How long a service found to predate held_blocks is asked as before until it is re-checked (60 s). */
    static final long RECHECK_NANOS = TimeUnit.SECONDS.toNanos(60);

    private final Channel channel;
    private final String endpoint;
    private final ByteString fingerprint;
    private final BlockLayout layout;
    private final LongSupplier nanoClock;
    private final Semaphore announcing = new Semaphore(MAX_ANNOUNCEMENTS_IN_FLIGHT);
    /**
     * Builds and sends the announcements, one at a time in order; its queue holds at most
     * {@link #MAX_ANNOUNCEMENTS_IN_FLIGHT} ({@link #announcing}). Its thread ends when idle for a while.
     */
    private final ThreadPoolExecutor announcer = new ThreadPoolExecutor(1, 1, 30, TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(), Thread.ofPlatform().name("moemesh-kv-announcer").daemon().factory());
    /** Whether the service counts Lookups from held_blocks (its last answer to one with held blocks echoed them). */
    private final AtomicBoolean heldBlocksHonoured = new AtomicBoolean(true);
    /** {@link #nanoClock} time from which the next Lookup with held blocks or announcement re-checks the service. */
    private final AtomicLong recheckAt = new AtomicLong();

    ChainLookups(Channel channel, String endpoint, ByteString fingerprint, BlockLayout layout) {
        this(channel, endpoint, fingerprint, layout, System::nanoTime);
    }

    /** @param nanoClock the time (ns) the re-check of a service that predates held_blocks is due by */
    ChainLookups(Channel channel, String endpoint, ByteString fingerprint, BlockLayout layout, LongSupplier nanoClock) {
        this.channel = channel;
        this.endpoint = endpoint;
        this.fingerprint = fingerprint;
        this.layout = layout;
        this.nanoClock = nanoClock;
        announcer.allowCoreThreadTimeOut(true);
    }

    /**
     * Length of the leading run of {@code chain}'s blocks from {@code held} on that the service stores.
     *
     * @param held    leading blocks of {@code chain} the caller holds (0 .. chain.size())
     * @param repeat  the sequence was announced before
     * @param timeout for the whole answer: a second Lookup of a service that predates held_blocks shares it
     */
    int lookup(List<BlockHash> chain, int held, boolean repeat, Duration timeout) {
        if (held < 0 || held > chain.size()) {
            throw new IllegalArgumentException("held blocks: " + held + " of a chain of " + chain.size());
        }
        Deadline deadline = Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS);
        if (held > 0 && !sendsHeldBlocks()) {
            return lookupAlone(chain.subList(held, chain.size()), deadline);
        }
        LookupResponse r = KvCacheServiceGrpc.newBlockingStub(channel).withDeadline(deadline)
                .lookup(request(chain, held, repeat));
        int present = r.getPresentBlocks();
        if (held == 0) {
            return Math.min(present, chain.size()); // counted from block 0 by every service: nothing to tell
        }
        boolean echoed = r.getCountedFrom() == held;
        answered(echoed);
        if (echoed) {
            return Math.min(present, chain.size() - held);
        }
        return present >= held ? Math.min(present - held, chain.size() - held)
                : lookupAlone(chain.subList(held, chain.size()), deadline);
    }

    /** A Lookup of {@code rest} as a chain of its own (a service that predates held_blocks), by {@code deadline}. */
    private int lookupAlone(List<BlockHash> rest, Deadline deadline) {
        int present = KvCacheServiceGrpc.newBlockingStub(channel).withDeadline(deadline)
                .lookup(request(rest, 0, false)).getPresentBlocks();
        return Math.min(present, rest.size());
    }

    /**
     * A Lookup of the whole chain with every block held (it asks about none), handed to the announcer thread, which
     * builds it (about 34 bytes per block) and sends it without waiting for the answer: the caller, the engine thread,
     * only queues the chain it has. A failure is only logged (the request goes on without the service). Not sent for
     * an empty chain, nor to a service that predates held_blocks (it would take the chain as asked about, and its
     * other Lookups are of the rest alone) but when it is re-checked; dropped while
     * {@link #MAX_ANNOUNCEMENTS_IN_FLIGHT} are queued or unanswered (which bounds the announcer's queue).
     *
     * @param chain not changed afterwards (the announcer reads it)
     */
    Announcement announce(List<BlockHash> chain, Duration timeout) {
        if (chain.isEmpty() || !heldBlocksHonoured.get() && !recheckDue()) {
            return Announcement.NOT_SENT;
        }
        if (!announcing.tryAcquire()) {
            return Announcement.DROPPED;
        }
        if (!sendsHeldBlocks()) { // another call took this re-check meanwhile
            announcing.release();
            return Announcement.NOT_SENT;
        }
        try {
            announcer.execute(() -> send(chain, timeout));
        } catch (RuntimeException e) { // closed
            announcing.release();
            throw e;
        }
        return Announcement.SENT;
    }

    /** On the announcer thread: builds and sends one announcement; its permit is given back when it ends. */
    private void send(List<BlockHash> chain, Duration timeout) {
        ListenableFuture<LookupResponse> answer;
        try {
            answer = KvCacheServiceGrpc.newFutureStub(channel).withDeadlineAfter(timeout.toNanos(),
                    TimeUnit.NANOSECONDS).lookup(request(chain, chain.size(), false));
        } catch (RuntimeException e) {
            announcing.release();
            log.debug("announcing a chain of {} KV blocks to {} failed: {}", chain.size(), endpoint, e.toString());
            return;
        }
        Futures.addCallback(answer, new FutureCallback<>() {
            @Override
            public void onSuccess(LookupResponse r) {
                announcing.release();
                answered(r.getCountedFrom() == chain.size());
            }

            @Override
            public void onFailure(Throwable t) {
                announcing.release();
                log.debug("announcing a chain of {} KV blocks to {} failed: {}", chain.size(), endpoint,
                        t.toString());
            }
        }, MoreExecutors.directExecutor());
    }

    /** Drops the announcements not sent yet (the client closes). */
    void close() {
        announcer.shutdownNow();
    }

    private boolean recheckDue() {
        return nanoClock.getAsLong() - recheckAt.get() >= 0;
    }

    /**
     * Whether this Lookup with held blocks (or announcement) sends them: always to a service that honours them; to one
     * that predates them only the first call after each {@link #RECHECK_NANOS} (the re-check).
     */
    private boolean sendsHeldBlocks() {
        if (heldBlocksHonoured.get()) {
            return true;
        }
        long at = recheckAt.get();
        long now = nanoClock.getAsLong();
        return now - at >= 0 && recheckAt.compareAndSet(at, now + RECHECK_NANOS);
    }

    /** The service answered a request with held blocks: {@code echoed} whether its counted_from said it counted so. */
    private void answered(boolean echoed) {
        if (echoed) {
            if (heldBlocksHonoured.compareAndSet(false, true)) {
                log.info("the kvcache-service at {} now counts Lookups from held_blocks: its Lookups carry whole chains "
                        + "again, and requests that fetch nothing are announced", endpoint);
            }
            return;
        }
        recheckAt.set(nanoClock.getAsLong() + RECHECK_NANOS);
        if (heldBlocksHonoured.compareAndSet(true, false)) {
            log.info("the kvcache-service at {} predates Lookup's held_blocks: its Lookups ask about the blocks after "
                    + "the local ones alone, and requests that fetch nothing are not announced (re-checked every {} s)",
                    endpoint, TimeUnit.NANOSECONDS.toSeconds(RECHECK_NANOS));
        }
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
