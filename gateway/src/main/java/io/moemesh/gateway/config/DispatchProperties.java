package io.moemesh.gateway.config;

import io.moemesh.gateway.dispatch.ReplicaPicker;
import io.moemesh.service.expert.SharedMemory;
import io.moemesh.service.grpc.TensorArena;
import java.time.Duration;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.util.unit.DataSize;

/**
 * How the gateway calls the expert-services ({@code moemesh.gateway.dispatch.*}, a part of {@link GatewayProperties}):
 * deadlines, bulkhead and circuit breaker, the wire dtype, the replica picker, lookahead prefetch and the same-host
 * shared-memory arena. Checked at startup.
 *
 * @param stepDeadline        a layer's expert calls, retries and hedges included, must finish within this
 *                            (positive); a call unanswered after half the time its step had left is hedged (also
 *                            sent to another replica holding its experts, the first reply wins); a probe of an
 *                            instance whose breaker is half-open may use half of it
 * @param maxConcurrentCalls  bulkhead: calls in flight per instance, ≥ 1, and at least {@code micro-batches} (checked
 *                            by {@link GatewayProperties}: each micro-batch has a call in flight at once); a call
 *                            refused because the bulkhead is full waits for one of them to answer
 * @param failureRateThreshold circuit breaker: percent of failed calls (of the last 10, at least 3) that opens it,
 *                            in (0, 100]
 * @param openStateWait       circuit breaker (≥ 1 ms): how long an open breaker rejects calls before it half-opens by
 *                            itself to let one probe through (at once when the instance's gRPC health turns
 *                            SERVING again)
 * @param wireDtype           f32 (exact, default) or bf16 (lossy, half the bytes)
 * @param replicaPicker       which replica of an expert computes a token's pair ({@link ReplicaPicker#names()}):
 *                            {@code prefer-visited} (default: an instance the token already visits at the
 *                            layer, else the least loaded), {@code least-loaded} (the least loaded, visited or
 *                            not) or {@code balanced-experts} (whole experts, the one with the most pairs first,
 *                            each to its least loaded replica, so every instance gets an even share of the step and
 *                            reads each of its experts' weights once; what {@code moemesh up} sets); any other name
 *                            is refused at startup. Never changes tokens, only where experts run
 * @param lookaheadPrefetch   Prefetch hints from the engine's lookahead, {@code
 *                            moemesh.gateway.dispatch.lookahead-prefetch.*}
 * @param sharedMemorySlots   instances on this host ({@code unix:///} endpoints, peer-uid security): slots of the
 *                            shared-memory arena each ExpertBatch stream offers (in /dev/shm), so activations and
 *                            outputs cross as two memory copies instead of through the socket; a message finds a
 *                            free slot or travels in the message. 0 = off. Default 16
 * @param sharedMemorySlotSize bytes per slot, a message's activations and its float32 outputs; a larger tensor
 *                            travels in the message. Default 1 MB (32 tokens of hidden 8192 in float32)
 */
public record DispatchProperties(
        @DefaultValue("10s") Duration stepDeadline,
        @DefaultValue("64") int maxConcurrentCalls,
        @DefaultValue("50") float failureRateThreshold,
        @DefaultValue("5s") Duration openStateWait,
        @DefaultValue("f32") String wireDtype,
        @DefaultValue("prefer-visited") String replicaPicker,
        @DefaultValue LookaheadPrefetchProperties lookaheadPrefetch,
        @DefaultValue("16") int sharedMemorySlots,
        @DefaultValue("1MB") DataSize sharedMemorySlotSize) {

    public DispatchProperties {
        // Resilience4j would refuse some of these only when the first instance connects (a gateway following a
        // router then retries, and fails, at every placement), and a bulkhead of 0 calls fails every request while
        // readiness stays UP: all are refused here, at startup.
        if (!stepDeadline.isPositive()) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.step-deadline must be a positive duration, got "
                    + stepDeadline);
        }
        if (maxConcurrentCalls < 1) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.max-concurrent-calls must be >= 1, got "
                    + maxConcurrentCalls);
        }
        if (!(failureRateThreshold > 0 && failureRateThreshold <= 100)) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.failure-rate-threshold must be in (0, 100], got "
                    + (failureRateThreshold == (long) failureRateThreshold ? Long.toString((long) failureRateThreshold)
                    : Float.toString(failureRateThreshold)));
        }
        if (openStateWait.compareTo(Duration.ofMillis(1)) < 0) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.open-state-wait must be at least 1ms, got "
                    + openStateWait);
        }
        if (sharedMemorySlots < 0 || sharedMemorySlots > 1024) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.shared-memory-slots must be 0 (off) to 1024, "
                    + "got " + sharedMemorySlots);
        }
        if (sharedMemorySlotSize.toBytes() < TensorArena.MIN_SLOT_BYTES || (sharedMemorySlots > 0
                && !TensorArena.validLayout(sharedMemorySlots, sharedMemorySlotSize.toBytes()))) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.shared-memory-slot-size must be at least 4KB, "
                    + "and slots × slot size at most 1GB, got " + sharedMemorySlots + " × " + sharedMemorySlotSize);
        }
        if (!"f32".equals(wireDtype) && !"bf16".equals(wireDtype)) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.wire-dtype must be f32 or bf16, got "
                    + wireDtype);
        }
        ReplicaPicker.named(replicaPicker, "moemesh.gateway.dispatch.replica-picker");
    }

    /** The arena each same-host ExpertBatch stream offers ({@link SharedMemory#OFF} with 0 slots). */
    public SharedMemory sharedMemory() {
        return sharedMemorySlots == 0 ? SharedMemory.OFF
                : SharedMemory.of(sharedMemorySlots, sharedMemorySlotSize.toBytes());
    }

    /** The configured {@link #replicaPicker}. */
    public ReplicaPicker picker() {
        return ReplicaPicker.named(replicaPicker, "moemesh.gateway.dispatch.replica-picker");
    }
}
