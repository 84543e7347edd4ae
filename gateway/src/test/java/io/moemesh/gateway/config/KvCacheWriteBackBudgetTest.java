package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.kvcache.KvCacheClient;
import io.moemesh.gateway.kvcache.KvPayload;
import io.moemesh.gateway.kvcache.WriteBack;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * The write-back the gateway wires: swap-outs' and offloads' copies, heap beside the KV pool, have a fixed budget
 * (write-back-queue-blocks), never the pool's size. Before, a pool-sized budget let a slow service's swap-outs copy up
 * to a second pool (half of -Xmx or more) and the gateway ran out of memory.
 */
class KvCacheWriteBackBudgetTest {
    @Test
    void swapOutCopies_areBudgetedByWriteBackQueueBlocks_notByThePoolsSize() {
        GatewayProperties p = new Binder(new MapConfigurationPropertySource(Map.of(
                "moemesh.gateway.model-dir", "/models/x",
                "moemesh.gateway.kvcache.write-back-queue-blocks", "4")))
                .bindOrCreate("moemesh.gateway", GatewayProperties.class);
        KvPayload shape = new KvPayload(2, 2, 4, 8);
        PrefixCachingKvCache cache = new PrefixCachingKvCache(shape.layers(), shape.kvHeads() * shape.headDim(),
                shape.blockTokens(), 64, ModelFingerprint.of(new byte[32]), true);
        // Never connected: the writer only waits for blocks.
        KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget("127.0.0.1:1").usePlaintext().build(),
                "127.0.0.1:1", ModelFingerprint.of(new byte[32]), shape, null);
        WriteBack w = new KvCacheConfiguration().kvWriteBack(p, Optional.of(client), cache, new SimpleMeterRegistry());
        try {
            assertThat(cache.totalBlocks()).isEqualTo(64);
            assertThat(w.priorityRoom()).isEqualTo(4);
        } finally {
            w.close(Duration.ZERO);
            client.close();
        }
    }
}
