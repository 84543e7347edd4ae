package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static io.moemesh.kvcache.support.KvTestMesh.sequence;
import static io.moemesh.kvcache.support.KvTestMesh.wire;
import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.ModelStats;
import io.moemesh.proto.kvcache.v1.StatsRequest;
import io.moemesh.service.kvcache.GetBlocks;
import io.moemesh.service.kvcache.GetReply;
import io.moemesh.service.kvcache.KvGetWire;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Get through the zero-copy reply marshaller on both sides (the gateway's reader, {@link KvGetWire} and
 * {@link GetBlocks}), over real TLS sockets; and a whole-prefix restore leaves the tiers as they were once DRAM is
 * full (no promotion, so no demotion). The generated client's view of the same replies is KvCacheServiceTest's.
 */
class KvCacheGetTest extends KvCacheServiceTestBase {
    private static final MethodDescriptor<GetRequest, GetReply> GET = KvGetWire.client(LAYOUT.bytesPerBlock());

    private Iterator<GetReply> get(List<Block> blocks) {
        return ClientCalls.blockingServerStreamingCall(channel, GET,
                CallOptions.DEFAULT.withDeadlineAfter(1, TimeUnit.MINUTES), GetRequest.newBuilder()
                        .setModelFingerprint(fp()).setLayout(wire(BT)).addAllBlockHashes(hashes(blocks)).build());
    }

    private ModelStats stats() {
        return stub.stats(StatsRequest.getDefaultInstance()).getModels(0);
    }

    @Test
    void get_ofAPrefixLongerThanDram_returnsEveryBlock_andMovesNothingBetweenTiers() throws Exception {
        List<Block> seq = sequence(301, 8, BT, ""); // DRAM holds 4: the first 4 are demoted to SSD
        put(seq, "");
        ModelStats before = stats();
        assertThat(before.getTiers(0).getUsedBytes()).isEqualTo(before.getTiers(0).getCapacityBytes());

        List<byte[]> got = GetBlocks.read(get(seq), seq.size(), LAYOUT.bytesPerBlock());

        assertThat(got).hasSize(8);
        for (int i = 0; i < 8; i++) {
            assertThat(got.get(i)).isEqualTo(seq.get(i).payload());
        }
        ModelStats after = stats();
        assertThat(after.getPromotions()).isEqualTo(before.getPromotions());
        assertThat(after.getDemotions()).isEqualTo(before.getDemotions());
        assertThat(after.getTiers(1).getBytesWritten()).isEqualTo(before.getTiers(1).getBytesWritten());
        assertThat(after.getTiers(1).getHits() - before.getTiers(1).getHits()).isEqualTo(4);
        assertThat(after.getTiers(0).getHits() - before.getTiers(0).getHits()).isEqualTo(4);
        assertThat(lookup(hashes(seq)).getPresentBlocks()).isEqualTo(8);
    }

    @Test
    void get_stoppedAfterTheFirstBlock_andCancelled_leavesTheServiceServingTheRest() throws Exception {
        List<Block> seq = sequence(302, 6, BT, "");
        put(seq, "");
        Context.CancellableContext call = Context.current().withCancellation();
        List<byte[]> first = call.call(() -> GetBlocks.read(get(seq), 1, LAYOUT.bytesPerBlock()));
        call.cancel(null);
        assertThat(first).hasSize(1);
        assertThat(first.getFirst()).isEqualTo(seq.getFirst().payload());

        List<byte[]> all = GetBlocks.read(get(seq), seq.size(), LAYOUT.bytesPerBlock());
        assertThat(all).hasSize(6);
        assertThat(all.get(5)).isEqualTo(seq.get(5).payload());
    }

    @Test
    void get_ofAMissingBlock_endsTheRunThere() throws Exception {
        List<Block> seq = sequence(303, 3, BT, "");
        put(List.of(seq.get(0), seq.get(2)), "");
        List<byte[]> got = GetBlocks.read(get(seq), seq.size(), LAYOUT.bytesPerBlock());
        assertThat(got).hasSize(1);
        assertThat(got.getFirst()).isEqualTo(seq.getFirst().payload());
    }
}
