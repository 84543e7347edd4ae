package io.moemesh.gateway.config;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.kvcache.AttendOffload;
import io.moemesh.gateway.kvcache.KvCacheClient;
import io.moemesh.gateway.kvcache.KvPayload;
import io.moemesh.gateway.kvcache.RemotePrefixes;
import io.moemesh.gateway.kvcache.TransferRates;
import io.moemesh.gateway.kvcache.WriteBack;
import io.moemesh.model.MoeModel;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.tls.MeshCredentials;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * The kvcache-service as the KV cache's second tier ({@code moemesh.gateway.kvcache.*}, {@link KvCacheProperties}):
 * a channel (TCP, or the service's domain socket for a {@code unix:///} endpoint) over mutual TLS with the gateway's
 * mesh credentials ({@code moemesh.gateway.tls.*}), the write-back of
 * the prefix cache's blocks, and the scheduler's prefix loader and preemption policy ({@link RemotePrefixes}, wired
 * into the scheduler in {@link GatewayConfiguration}), and with {@code attend.enabled} the offload of long contexts
 * ({@link AttendOffload}: the cache's block offload and the engine's remote attention). No beans without an endpoint. Metrics: docs/metrics.md,
 * "Gateway", {@code moemesh_gateway_kvcache_*}.
 */
@Configuration(proxyBeanMethods = false)
public class KvCacheConfiguration {
    private static final Logger log = LoggerFactory.getLogger(KvCacheConfiguration.class);

    @Bean(destroyMethod = "close")
    KvCacheClient kvCacheClient(GatewayProperties p, MoeModel model, Optional<MeshCredentials> expertChannelCredentials,
                                PrefixCachingKvCache cache) {
        KvCacheProperties k = p.kvcache();
        if (!k.enabled()) {
            return null;
        }
        // The expert channels' credentials when there are expert-services, else our own load of the same files.
        MeshCredentials own = expertChannelCredentials.isPresent() ? null
                : MeshCredentials.load(p.tls(), "moemesh.gateway.tls");
        MeshCredentials credentials = expertChannelCredentials.orElse(own);
        if (!credentials.isMtls()) {
            log.warn("moemesh.gateway.tls.mode=plaintext: the channel to the kvcache-service is not encrypted");
        }
        // host:port is TCP, unix:///path the service's domain socket on this host (InstanceEndpoint: grpc-netty over
        // epoll, a NettyChannelBuilder too).
        ManagedChannelBuilder<?> builder = InstanceEndpoint.parse(k.endpoint()).channelBuilder(credentials.channel(),
                        p.unixSocketSecurity())
                .keepAliveTime(30, TimeUnit.SECONDS).keepAliveTimeout(10, TimeUnit.SECONDS)
                .maxInboundMessageSize(KvCacheClient.inboundMessageBytes(p.maxInboundMessageBytes(),
                        model.config().numHeads(), model.config().headDim()));
        if (builder instanceof NettyChannelBuilder netty) {
            // Get streams a restored prefix (MiBs per sequence, 1 MiB chunks): with grpc-java's 1 MiB default
            // window the service stalls after every chunk waiting for a WINDOW_UPDATE (bench kvcache-restore:
            // 12-27 MiB/s at 1 MiB, 144-291 MiB/s at 16 MiB, loopback, loaded machine).
            netty.flowControlWindow(KV_FLOW_CONTROL_WINDOW_BYTES);
        }
        ManagedChannel channel = builder.build();
        var c = model.config();
        boolean localReads = k.localReads(p.unixSocketSecurity());
        if (localReads) {
            log.info("KV restores from {} read the service's SSD segment files on this host (Locate; "
                    + "moemesh.gateway.kvcache.local-read=auto)", k.endpoint());
        }
        return new KvCacheClient(channel, k.endpoint(), ModelFingerprint.of(model.directory()),
                new KvPayload(c.numLayers(), c.numKvHeads(), cache.blockTokens(), c.headDim()), own, localReads);
    }

    /** HTTP/2 flow-control window of the channel to the kvcache-service, bytes. */
    static final int KV_FLOW_CONTROL_WINDOW_BYTES = 16 << 20;

    @Bean(destroyMethod = "close")
    WriteBack kvWriteBack(GatewayProperties p, Optional<KvCacheClient> client, PrefixCachingKvCache cache,
                          MeterRegistry meters) {
        if (client.isEmpty()) {
            return null;
        }
        KvCacheProperties k = p.kvcache();
        // Swap-outs' and offloads' copies are heap beside the pool (half of -Xmx or more): a budget of their own, of
        // write-back-queue-blocks, never the pool's size, which let a slow service's swap-outs pile up a second pool.
        WriteBack w = new WriteBack(client.get(), k.writeBackQueueBlocks(), k.writeBackQueueBlocks(), k.putTimeout(),
                k.rememberedBlocks(), k.drainTimeout());
        cache.setBlockSink(w);
        FunctionCounter.builder("moemesh_gateway_kvcache_writeback_blocks", w, WriteBack::writtenBlocks)
                .description("KV blocks written back to the kvcache-service (stored or already there)").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_writeback_bytes", w, WriteBack::writtenBytes)
                .description("payload bytes of those blocks").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_writeback_dropped_blocks", w, WriteBack::droppedBlocks)
                .description("KV blocks not written back for want of room: the queue (write-back-queue-blocks) "
                        + "was full, or a swap-out's past as many swap-out and offload copies held").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_writeback_failed_blocks", w, WriteBack::failedBlocks)
                .description("KV blocks whose Put failed or timed out").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_writeback_declined_blocks", w, WriteBack::declinedBlocks)
                .description("KV blocks the service declined or had no space for").register(meters);
        Gauge.builder("moemesh_gateway_kvcache_writeback_queued_blocks", w, WriteBack::queuedBlocks)
                .description("KV blocks waiting to be written back").register(meters);
        return w;
    }

    @Bean(destroyMethod = "close")
    RemotePrefixes remotePrefixes(GatewayProperties p, Optional<KvCacheClient> client, Optional<WriteBack> writeBack,
                                  PrefixCachingKvCache cache, MeterRegistry meters) {
        if (client.isEmpty()) {
            return null;
        }
        KvCacheProperties k = p.kvcache();
        RemotePrefixes r = new RemotePrefixes(cache, client.get(), writeBack.orElseThrow(), new TransferRates(),
                k.fetchTimeout(), k.minFetchBlocks(), k.mode(), RemotePrefixes.fetchThreads(k.fetchThreads()));
        KvCacheClient kv = client.get();
        FunctionCounter.builder("moemesh_gateway_kvcache_local_read_blocks", kv, KvCacheClient::localReadBlocks)
                .description("KV blocks restored by reading the kvcache-service's segment files on this host "
                        + "(local-read)").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_local_read_failures", kv, KvCacheClient::localReadFailures)
                .description("local reads whose read or check failed (the block and the rest came through Get)")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_fetches", r, RemotePrefixes::fetches)
                .description("admissions and restores that looked for blocks in the kvcache-service").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_fetched_blocks", r, RemotePrefixes::fetchedBlocks)
                .description("KV blocks fetched from the kvcache-service into the local cache").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_fetched_tokens", r, RemotePrefixes::fetchedTokens)
                .description("positions of those blocks").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_fetch_failures", r, RemotePrefixes::fetchFailures)
                .description("fetches that failed, timed out or stopped at a bad block (recomputed instead)")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_bad_blocks", r, RemotePrefixes::badBlocks)
                .description("fetched blocks refused: wrong size or order, or not the bytes this gateway stored")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_announcements", r, RemotePrefixes::announcements)
                .description("admitted requests that fetched nothing, announced to the kvcache-service's policy")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_announcements_dropped", r,
                        RemotePrefixes::droppedAnnouncements)
                .description("announcements not sent: as many as allowed were unanswered (a slow service)")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_swap_outs", r, RemotePrefixes::swapOuts)
                .description("preempted sequences swapped out to the kvcache-service").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_restores", r, RemotePrefixes::restores)
                .description("resumes of swapped-out sequences that restored blocks from the service").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_restored_blocks", r, RemotePrefixes::restoredBlocks)
                .description("KV blocks those resumes restored").register(meters);
        Gauge.builder("moemesh_gateway_kvcache_restore_bytes_per_second", r.rates(), TransferRates::restoreBytesPerSecond)
                .description("measured restore bandwidth (Lookup + Get, or Locate and the local reads), moving "
                        + "average; 0 until measured")
                .register(meters);
        Gauge.builder("moemesh_gateway_kvcache_prefill_tokens_per_second", r.rates(),
                        TransferRates::prefillTokensPerSecond)
                .description("measured prefill throughput of the engine, moving average; 0 until measured")
                .register(meters);
        return r;
    }

    /**
     * Long contexts over the service's Attend ({@code moemesh.gateway.kvcache.attend.*}): the cache offloads through
     * it, and the engine ({@link GatewayConfiguration}) attends through it.
     */
    @Bean(destroyMethod = "close")
    AttendOffload attendOffload(GatewayProperties p, Optional<KvCacheClient> client, Optional<WriteBack> writeBack,
                                PrefixCachingKvCache cache, MoeModel model, MeterRegistry meters) {
        KvCacheProperties.Attend a = p.kvcache().attend();
        if (client.isEmpty() || !a.enabled()) {
            return null;
        }
        // Before anything starts: an Attend names every remote block, and the service takes a bounded number.
        a.checkRemotePrefix(model.config().maxPositionEmbeddings(), p.admission().maxPromptTokens(),
                p.admission().maxNewTokens(), cache.blockTokens(), KvCacheClient.MAX_CHAIN_BLOCKS);
        AttendOffload o = new AttendOffload(client.get(), writeBack.orElseThrow(), a.thresholdTokens(),
                a.localBlocks(), a.timeout(), a.offloadTimeout(), cache.totalBlocks());
        if (!cache.offloadsWhenFull(o)) {
            // The cache's own rule, asked with the offload's policy: refused at startup, not served as if it offloaded.
            o.close();
            throw a.neverOffloadsIn(cache.totalBlocks(), cache.blockTokens());
        }
        cache.setBlockOffload(o);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_offloaded_blocks", o, AttendOffload::offloadedBlocks)
                .description("KV blocks of long sequences stored and pinned in the kvcache-service and freed locally")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_offload_failures", o, AttendOffload::offloadFailures)
                .description("offloads that failed (the sequence stayed local)").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_offload_retries", o, AttendOffload::offloadRetries)
                .description("offloads offered again with a copy of every block: one sent by its hash alone was gone "
                        + "from the service").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_calls", o, AttendOffload::attendCalls)
                .description("Attend calls sent (one per sequence per layer per step)").register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_failures", o, AttendOffload::attendFailures)
                .description("layers whose Attend failed or missed attend.timeout (each failed those requests alone)")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_kvcache_attend_wire_bytes", o, AttendOffload::attendWireBytes)
                .description("serialized bytes of answered Attend requests and responses").register(meters);
        Gauge.builder("moemesh_gateway_kvcache_attend_pinned_sequences", o, AttendOffload::pinnedSequences)
                .description("sequences with blocks pinned in the kvcache-service").register(meters);
        return o;
    }
}
