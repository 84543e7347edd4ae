package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The channel to the kvcache-service accepts the service's largest replies whatever max-inbound-message-bytes says
 * for the expert-services: a 1 MiB Get chunk (a Mixtral-8x7B block is 4 MiB) and an Attend reply of 256 query rows.
 */
class KvCacheInboundLimitTest {

    @ParameterizedTest(name = "configured {0}, {1} heads x {2}: {3}")
    @CsvSource({
            // a small expert limit: the Attend reply of Mixtral-8x7B's 32 x 128 heads (256 rows x 32 x 129 x 4 bytes,
            // 65,536 tiers, 64 KiB framing) sets the floor
            "65536, 32, 128, 4423680",
            // a tiny model: the Get chunk (1 MiB plus 64 KiB framing) does
            "65536, 4, 16, 1114112",
            // the default 64 MiB is above both: kept
            "67108864, 32, 128, 67108864"})
    void inboundLimit_isNeverBelowTheServicesLargestReply(int configured, int heads, int headDim, int expected) {
        int limit = KvCacheClient.inboundMessageBytes(configured, heads, headDim);

        assertThat(limit).isEqualTo(expected).isGreaterThanOrEqualTo(configured)
                .isGreaterThan(KvCacheClient.CHUNK_BYTES)
                .isGreaterThan(AttendOffload.MAX_ROWS * heads * headDim * Float.BYTES);
    }
}
