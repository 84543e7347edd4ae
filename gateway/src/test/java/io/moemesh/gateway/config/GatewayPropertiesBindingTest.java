package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.expert.SharedMemory;
import io.moemesh.service.grpc.UnixSocketSecurity;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * moemesh.gateway.micro-batches, micro-batch-min-rows, micro-batch-grouping, micro-batch-min-expert-rows,
 * unix-socket-security, dispatch.shared-memory-*, placement-poll-interval, admission.max-waiting,
 * admission.tenant-requests-per-second and tenant-burst, admission.request-read-timeout,
 * max-grpc-calls-per-connection (also against max-waiting + max-running) and max-held-request-bytes, grpc-port,
 * shutdown-grace, api-keys-reload-period, max-inbound-message-bytes and dispatch.max-concurrent-calls against
 * micro-batches, bound as Spring binds them.
 */
class GatewayPropertiesBindingTest {

    private static GatewayProperties bind(Map<String, String> properties) {
        Map<String, String> all = new HashMap<>(properties);
        all.put("moemesh.gateway.model-dir", "/models/m");
        return new Binder(new MapConfigurationPropertySource(all)).bindOrCreate("moemesh.gateway",
                GatewayProperties.class);
    }

    @Test
    void pingPong_onByDefault_twoMicroBatches_fromEightRows() {
        GatewayProperties p = bind(Map.of());
        assertThat(p.microBatches()).isEqualTo(2);
        assertThat(p.microBatchMinRows()).isEqualTo(8);
        assertThat(bind(Map.of("moemesh.gateway.micro-batches", "1")).microBatches()).isOne();
        assertThat(p.microBatchGrouping()).isEqualTo("contiguous");
        assertThat(bind(Map.of("moemesh.gateway.micro-batch-grouping", "predicted-path")).microBatchGrouping())
                .isEqualTo("predicted-path");
        assertThat(p.microBatchMinExpertRows()).isEqualTo(64);
        assertThat(bind(Map.of("moemesh.gateway.micro-batch-min-expert-rows", "0")).microBatchMinExpertRows()).isZero();
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
            "micro-batches        | 0 | moemesh.gateway.micro-batches must be >= 1 (1 = off), got 0",
            "micro-batch-min-rows | 1 | moemesh.gateway.micro-batch-min-rows must be >= 2, got 1",
            "micro-batch-min-expert-rows | -1 | moemesh.gateway.micro-batch-min-expert-rows must be >= 0 (0 = no floor), got -1",
            "micro-batch-grouping | by-path | moemesh.gateway.micro-batch-grouping must be one of [contiguous, "
                    + "predicted-path], got 'by-path'",
            "dispatch.shared-memory-slots | -1 | moemesh.gateway.dispatch.shared-memory-slots must be 0 (off) to 1024, got -1",
            "dispatch.shared-memory-slots | 1025 | moemesh.gateway.dispatch.shared-memory-slots must be 0 (off) to 1024, got 1025",
            "dispatch.shared-memory-slot-size | 1KB | moemesh.gateway.dispatch.shared-memory-slot-size must be at least 4KB, "
                    + "and slots × slot size at most 1GB, got 16 × 1024B",
            "dispatch.shared-memory-slot-size | 128MB | moemesh.gateway.dispatch.shared-memory-slot-size must be at least "
                    + "4KB, and slots × slot size at most 1GB, got 16 × 134217728B",
            "placement-poll-interval | 0ms | moemesh.gateway.placement-poll-interval must be at least 1ms, got PT0S",
            "placement-poll-interval | 500us | moemesh.gateway.placement-poll-interval must be at least 1ms, got PT0.0005S",
            "placement-poll-interval | -1s | moemesh.gateway.placement-poll-interval must be at least 1ms, got PT-1S",
            "admission.max-waiting | 0 | moemesh.gateway.admission.max-waiting must be ≥ 1, got 0",
            "admission.max-request-bytes | 2147483640 | moemesh.gateway.admission.max-request-bytes must be between 1 "
                    + "and 2147483639, got 2147483640",
            "admission.max-request-bytes | 0 | moemesh.gateway.admission.max-request-bytes must be between 1 and "
                    + "2147483639, got 0",
            "admission.max-waiting | -1 | moemesh.gateway.admission.max-waiting must be ≥ 1, got -1",
            "admission.request-read-timeout | 0s | moemesh.gateway.admission.request-read-timeout must be a positive "
                    + "duration, got PT0S",
            "admission.request-read-timeout | -1s | moemesh.gateway.admission.request-read-timeout must be a positive "
                    + "duration, got PT-1S",
            "admission.max-grpc-calls-per-connection | -1 | moemesh.gateway.admission.max-grpc-calls-per-connection "
                    + "must be ≥ 0 (0 = the larger of 2048 and max-waiting + moemesh.gateway.max-running), got -1",
            "max-inbound-message-bytes | 1000 | moemesh.gateway.max-inbound-message-bytes must be >= 65536, got 1000",
            "admission.tenant-requests-per-second | -1 | moemesh.gateway.admission.tenant-requests-per-second must be a "
                    + "finite number ≥ 0 (0 = no limit), got -1.0",
            "admission.tenant-requests-per-second | NaN | moemesh.gateway.admission.tenant-requests-per-second must be a "
                    + "finite number ≥ 0 (0 = no limit), got NaN",
            "admission.tenant-requests-per-second | Infinity | moemesh.gateway.admission.tenant-requests-per-second must "
                    + "be a finite number ≥ 0 (0 = no limit), got Infinity",
            "admission.tenant-burst | 0 | moemesh.gateway.admission.tenant-burst must be a finite number ≥ 1, got 0.0",
            "admission.tenant-burst | -3 | moemesh.gateway.admission.tenant-burst must be a finite number ≥ 1, got -3.0",
            "admission.tenant-burst | 0.5 | moemesh.gateway.admission.tenant-burst must be a finite number ≥ 1, got 0.5",
            "admission.tenant-burst | NaN | moemesh.gateway.admission.tenant-burst must be a finite number ≥ 1, got NaN",
            "grpc-port | -1 | moemesh.gateway.grpc-port must be in [0, 65535] (0 = a free port), got -1",
            "grpc-port | 65536 | moemesh.gateway.grpc-port must be in [0, 65535] (0 = a free port), got 65536",
            "shutdown-grace | -1s | moemesh.gateway.shutdown-grace must be 0 or more, got PT-1S",
            "api-keys-reload-period | 500ms | moemesh.gateway.api-keys-reload-period must be 0 (the key file is read "
                    + "once, at startup) or at least 1s, got PT0.5S",
            "api-keys-reload-period | -1m | moemesh.gateway.api-keys-reload-period must be 0 (the key file is read "
                    + "once, at startup) or at least 1s, got PT-1M"})
    void outOfRange_refusedAtStartup_namingTheProperty(String property, String value, String message) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway." + property, value)))
                .isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }

    @Test
    void apiKeysReloadPeriod_oneMinuteByDefault_zeroReadsOnce() {
        assertThat(bind(Map.of()).apiKeysReloadPeriod()).isEqualTo(java.time.Duration.ofMinutes(1));
        assertThat(bind(Map.of("moemesh.gateway.api-keys-reload-period", "0")).apiKeysReloadPeriod()).isZero();
        assertThat(bind(Map.of("moemesh.gateway.api-keys-reload-period", "1s")).apiKeysReloadPeriod())
                .isEqualTo(java.time.Duration.ofSeconds(1));
    }

    @Test
    void admissionRateAndBurst_zeroRateIsOff_andTheBoundsAreAccepted() {
        AdmissionProperties a = bind(Map.of()).admission();
        assertThat(a.tenantRequestsPerSecond()).isZero();
        assertThat(a.tenantBurst()).isEqualTo(20);
        assertThat(a.requestReadTimeout()).isEqualTo(java.time.Duration.ofSeconds(30));
        assertThat(a.maxGrpcCallsPerConnection()).isEqualTo(2048);
        a = bind(Map.of("moemesh.gateway.admission.tenant-requests-per-second", "0.5",
                "moemesh.gateway.admission.tenant-burst", "1")).admission();
        assertThat(a.tenantRequestsPerSecond()).isEqualTo(0.5);
        assertThat(a.tenantBurst()).isEqualTo(1);
        assertThat(bind(Map.of("moemesh.gateway.grpc-port", "65535", "moemesh.gateway.shutdown-grace", "0s")).grpcPort())
                .isEqualTo(65535);
    }

    @Test
    void grpcCallsPerConnection_belowWhatTheGatewayHolds_refusedAtStartup_namingTheProperties() {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.admission.max-grpc-calls-per-connection", "1279")))
                .isInstanceOf(BindException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.admission.max-grpc-calls-per-connection (1279) must be at least "
                        + "moemesh.gateway.admission.max-waiting (1024) + moemesh.gateway.max-running (256)");
        // Raising what the gateway holds raises the default with it (docs/kubernetes.md's example raises max-waiting
        // alone); an explicit lower value is refused.
        assertThat(bind(Map.of("moemesh.gateway.admission.max-waiting", "4096")).admission()
                .maxGrpcCallsPerConnection()).isEqualTo(4096 + 256);
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.admission.max-waiting", "4096",
                "moemesh.gateway.admission.max-grpc-calls-per-connection", "2048")))
                .isInstanceOf(BindException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("max-grpc-calls-per-connection (2048) must be at least")
                .hasMessageContaining("max-waiting (4096)");
        assertThat(bind(Map.of("moemesh.gateway.admission.max-grpc-calls-per-connection", "1280")).admission()
                .maxGrpcCallsPerConnection()).isEqualTo(1280);
        assertThat(bind(Map.of("moemesh.gateway.admission.max-waiting", "4", "moemesh.gateway.max-running", "4",
                "moemesh.gateway.admission.max-grpc-calls-per-connection", "8")).admission()
                .maxGrpcCallsPerConnection()).isEqualTo(8);
    }

    @Test
    void heldRequestBytes_thirtyTwoLargeRequestsOfTheLargestSizeByDefault_atLeastOneLargestMessageWhenSet() {
        assertThat(bind(Map.of()).admission().maxHeldRequestBytes()).isEqualTo(32L * 2 * 4194304);
        assertThat(bind(Map.of("moemesh.gateway.admission.max-request-bytes", "1000000",
                "moemesh.gateway.admission.max-concurrent-large-requests", "3")).admission().maxHeldRequestBytes())
                .isEqualTo(96_000_000L);
        assertThat(bind(Map.of("moemesh.gateway.admission.max-held-request-bytes", "4194304")).admission()
                .maxHeldRequestBytes()).isEqualTo(4194304);
        for (String bad : new String[] {"4194303", "-1"}) {
            assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.admission.max-held-request-bytes", bad)))
                    .isInstanceOf(BindException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("moemesh.gateway.admission.max-held-request-bytes must be 0 (32 × "
                            + "max-concurrent-large-requests × max-request-bytes) or at least "
                            + "moemesh.gateway.admission.max-request-bytes (4194304), so that one largest message "
                            + "fits, got " + bad);
        }
    }

    @Test
    void bulkheadSmallerThanTheMicroBatches_refusedAtStartup_namingBoth_onlyWithExpertServices() {
        Map<String, String> mesh = Map.of("moemesh.gateway.placement-file", "/tmp/placement.json",
                "moemesh.gateway.tls.mode", "plaintext");
        Map<String, String> one = new HashMap<>(mesh);
        one.put("moemesh.gateway.dispatch.max-concurrent-calls", "1");
        assertThatThrownBy(() -> bind(one)).isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessage("moemesh.gateway.dispatch.max-concurrent-calls "
                        + "(1) must be at least moemesh.gateway.micro-batches (2)");
        Map<String, String> two = new HashMap<>(one);
        two.put("moemesh.gateway.dispatch.max-concurrent-calls", "2");
        assertThat(bind(two).dispatch().maxConcurrentCalls()).isEqualTo(2);
        one.put("moemesh.gateway.micro-batches", "1");
        assertThat(bind(one).microBatches()).isOne();
        // Experts in-process: no calls, no micro-batches.
        assertThat(bind(Map.of("moemesh.gateway.dispatch.max-concurrent-calls", "1")).dispatch().maxConcurrentCalls())
                .isOne();
    }

    @Test
    void sharedMemory_sixteenSlotsOfOneMegabyteByDefault_offWithZeroSlots() {
        SharedMemory d = bind(Map.of()).dispatch().sharedMemory();
        assertThat(d.slots()).isEqualTo(16);
        assertThat(d.slotBytes()).isEqualTo(1 << 20);
        assertThat(bind(Map.of("moemesh.gateway.dispatch.shared-memory-slots", "0")).dispatch().sharedMemory())
                .isEqualTo(SharedMemory.OFF);
        SharedMemory set = bind(Map.of("moemesh.gateway.dispatch.shared-memory-slots", "4",
                "moemesh.gateway.dispatch.shared-memory-slot-size", "64KB")).dispatch().sharedMemory();
        assertThat(set.slots()).isEqualTo(4);
        assertThat(set.slotBytes()).isEqualTo(64 * 1024);
    }

    @Test
    void unixSocketSecurity_peerUidByDefault_tlsWhenSet() {
        assertThat(bind(Map.of()).unixSocketSecurity()).isEqualTo(UnixSocketSecurity.PEER_UID);
        assertThat(bind(Map.of("moemesh.gateway.unix-socket-security", "tls")).unixSocketSecurity())
                .isEqualTo(UnixSocketSecurity.TLS);
        assertThat(bind(Map.of("moemesh.gateway.unix-socket-security", "peer-uid")).unixSocketSecurity())
                .isEqualTo(UnixSocketSecurity.PEER_UID);
    }

    @Test
    void unixSocketSecurity_unknownValue_refusedAtStartup_namingTheProperty() {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.unix-socket-security", "none")))
                .isInstanceOf(BindException.class).hasMessageContaining("moemesh.gateway.unix-socket-security");
    }
}
