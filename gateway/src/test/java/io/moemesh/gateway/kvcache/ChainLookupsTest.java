package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link ChainLookups} against the recording in-memory kvcache.v1 service, on a clock the test turns: a service found
 * to predate held_blocks is asked as before only until it is re-checked (it may have been upgraded in place), an
 * announcement's answer tells a downgrade too, the two Lookups such a service may need share one deadline, and an
 * announcement is built and sent off its caller's thread.
 */
class ChainLookupsTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final ManagedChannel channel = NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build();
    private final AtomicLong nanos = new AtomicLong();
    /** The thread each call was started on (where its request was built just before). */
    private final List<String> callThreads = new CopyOnWriteArrayList<>();
    private final ChainLookups lookups = new ChainLookups(ClientInterceptors.intercept(channel, new ClientInterceptor() {
        @Override
        public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options,
                                                     Channel next) {
            callThreads.add(Thread.currentThread().getName());
            return next.newCall(method, options);
        }
    }), kv.endpoint(),
            ByteString.copyFrom(WriteBackTest.MODEL.bytes()), BlockLayout.newBuilder()
            .setBlockTokens(SHAPE.blockTokens()).setNumLayers(SHAPE.layers()).setNumKvHeads(SHAPE.kvHeads())
            .setHeadDim(SHAPE.headDim()).build(), nanos::get);
    private final List<BlockContents> blocks = WriteBackTest.chain(6, 40);
    private final List<BlockHash> chain = blocks.stream().map(BlockContents::hash).toList();
    private static final Duration TIMEOUT = Duration.ofSeconds(20);

    @AfterEach
    void stop() {
        lookups.close();
        channel.shutdownNow();
        kv.close();
    }

    private void inService(List<BlockContents> some) {
        for (BlockContents b : some) {
            kv.blocks.put(ByteString.copyFrom(b.hash().bytes()), SHAPE.encode(b.keys(), b.values()));
        }
    }

    private LookupRequest last() {
        return kv.lookupRequests.getLast();
    }

    /** Finds the service old: its answer from block 0 does not cover the 4 held blocks, so the rest is asked alone. */
    private void fallBack() {
        kv.legacyLookup = true;
        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        assertThat(kv.lookupRequests).hasSize(2);
        assertThat(last().getBlockHashesCount()).as("the rest alone").isEqualTo(2);
    }

    @Test
    void aServiceFoundOld_isReCheckedOncePerPeriod_andOnceUpgraded_getsWholeChainsAndAnnouncementsAgain() {
        inService(blocks.subList(4, 6));
        fallBack();
        kv.legacyLookup = false; // upgraded in place

        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        assertThat(last().getBlockHashesCount()).as("within the period: as before held_blocks").isEqualTo(2);
        assertThat(lookups.announce(chain, TIMEOUT)).isEqualTo(Announcement.NOT_SENT);

        nanos.addAndGet(ChainLookups.RECHECK_NANOS);
        assertThat(lookups.lookup(chain, 4, true, TIMEOUT)).isEqualTo(2);
        assertThat(last().getBlockHashesCount()).as("the re-check: the whole chain").isEqualTo(6);
        assertThat(last().getHeldBlocks()).isEqualTo(4);
        assertThat(last().getRepeat()).isTrue();
        int sent = kv.lookups.get();

        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        assertThat(kv.lookups.get()).as("one Lookup, the echo trusted").isEqualTo(sent + 1);
        assertThat(last().getHeldBlocks()).isEqualTo(4);
        assertThat(lookups.announce(chain, TIMEOUT)).isEqualTo(Announcement.SENT);
    }

    @Test
    void aReCheckOfAServiceStillOld_keepsTheOldWayForAnotherPeriod() {
        inService(blocks.subList(4, 6));
        fallBack();

        nanos.addAndGet(ChainLookups.RECHECK_NANOS);
        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        assertThat(kv.lookupRequests.get(2).getHeldBlocks()).as("the re-check").isEqualTo(4);
        assertThat(last().getBlockHashesCount()).as("no echo: the rest asked alone").isEqualTo(2);

        nanos.addAndGet(ChainLookups.RECHECK_NANOS - 1);
        int sent = kv.lookups.get();
        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        assertThat(kv.lookups.get()).isEqualTo(sent + 1);
        assertThat(last().getBlockHashesCount()).as("the next period not over yet").isEqualTo(2);
    }

    @Test
    void anAnnouncement_reChecksAServiceFoundOld_andItsEchoSwitchesBack() {
        inService(blocks.subList(4, 6));
        fallBack();
        kv.legacyLookup = false;
        nanos.addAndGet(ChainLookups.RECHECK_NANOS);

        assertThat(lookups.announce(chain, TIMEOUT)).as("the re-check").isEqualTo(Announcement.SENT);
        assertThat(lookups.announce(chain, TIMEOUT)).as("one re-check per period").isEqualTo(Announcement.NOT_SENT);

        // Its answer arrives on a gRPC thread: once it echoed held_blocks, Lookups carry whole chains again.
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            lookups.lookup(chain, 4, false, TIMEOUT);
            return kv.lookupRequests.stream().filter(q -> q.getHeldBlocks() == 4).count() == 2;
        });
        assertThat(kv.lookupRequests.stream().filter(q -> q.getHeldBlocks() == 4)).as("the first, and the last")
                .allSatisfy(q -> assertThat(q.getBlockHashesCount()).isEqualTo(6));
    }

    @Test
    void anAnnouncementAnsweredWithoutTheEcho_switchesToTheOldWay() {
        kv.legacyLookup = true; // replaced by an older service

        assertThat(lookups.announce(chain, TIMEOUT)).isEqualTo(Announcement.SENT);

        await().atMost(Duration.ofSeconds(30)).until(() -> lookups.announce(chain, TIMEOUT) == Announcement.NOT_SENT);
        inService(blocks.subList(4, 6));
        assertThat(lookups.lookup(chain, 4, false, TIMEOUT)).isEqualTo(2);
        // (announcements sent before the switch may still arrive: they hold every block)
        assertThat(kv.lookupRequests.stream().filter(q -> q.getHeldBlocks() != chain.size()))
                .as("one Lookup: the rest alone, no whole chain first").singleElement()
                .satisfies(q -> assertThat(q.getBlockHashesList()).isEqualTo(chain.subList(4, 6).stream()
                        .map(h -> ByteString.copyFrom(h.bytes())).toList()))
                .satisfies(q -> assertThat(q.getHeldBlocks()).isZero());
    }

    @Test
    void anAnnouncement_isBuiltAndSentByTheAnnouncerThread_notTheCaller() {
        assertThat(lookups.announce(chain, TIMEOUT)).isEqualTo(Announcement.SENT);

        await().atMost(Duration.ofSeconds(30)).until(() -> kv.lookups.get() == 1);
        assertThat(last().getHeldBlocks()).isEqualTo(chain.size());
        // The caller (the engine thread) only queued the chain it had.
        assertThat(callThreads).singleElement().isNotEqualTo(Thread.currentThread().getName())
                .isEqualTo("moemesh-kv-announcer");
    }

    @Test
    void theSecondLookupOfAServiceFoundOld_sharesTheFirstOnesDeadline() {
        inService(blocks.subList(4, 6)); // from block 0 nothing: the rest must be asked alone
        kv.legacyLookup = true;
        kv.delay = Duration.ofSeconds(1);

        // Each answer takes 1 s: two of them never fit in one 1.5 s deadline (each its own would).
        assertThatThrownBy(() -> lookups.lookup(chain, 4, false, Duration.ofMillis(1500)))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode())
                        .isEqualTo(Status.Code.DEADLINE_EXCEEDED));
    }
}
