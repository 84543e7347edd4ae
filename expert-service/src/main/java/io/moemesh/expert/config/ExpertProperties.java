package io.moemesh.expert.config;

import io.moemesh.expert.backend.ExpertBackends;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Settings of an expert-service instance, {@code moemesh.expert.*}: from application.yaml, {@code --key=value}
 * arguments, system properties or environment variables (relaxed binding: {@code moemesh.expert.model-dir} =
 * {@code MOEMESH_EXPERT_MODEL_DIR}), the same way under the local launcher and on Kubernetes.
 *
 * @param modelDir               Hugging Face model directory (config.json + safetensors); required
 * @param instanceId             this instance's id in placements (moemesh.router.v1.Instance.id)
 * @param deviceSlot             GPU ordinal on a GPU node; a logical slot number on CPU
 * @param memoryBudgetBytes      bound of the resident set, bytes of compute-ready expert weights
 * @param grpcHost               address the gRPC server binds; loopback unless told otherwise
 * @param grpcPort               gRPC port; 0 = a free port (logged at startup)
 * @param grpcUnixSocket         optional absolute path of a Unix domain socket the gRPC server listens on too (in
 *                               addition to the TCP port, same services and credentials), for a gateway on the same
 *                               host (endpoint {@code unix:///path}); Linux with Netty's epoll transport only. At most
 *                               107 bytes (sun_path); a stale socket file left by a killed instance is removed at
 *                               start, a live listener there is a startup error. Unset: TCP only
 * @param unixSocketSecurity     how the domain socket is secured: {@code peer-uid} (default): plaintext, served only to
 *                               processes of this instance's own uid as the kernel reports them (SO_PEERCRED), whose
 *                               calls have the identity {@code local-owner} and may do everything a placer may (that
 *                               uid can read every key of the local mesh anyway); the socket's directory must then be
 *                               accessible to its owner only. {@code tls}: the port's mutual TLS on the socket too
 *                               (needs {@code tls.mode=mtls}); clients must use the same value
 * @param placementFile          optional placement (protobuf JSON of router.v1.Placement) to load at startup:
 *                               this instance's experts, at the file's epoch
 * @param assignAll              without a placement file, hold every expert of the model at epoch 0 (a single
 *                               instance, tests); otherwise nothing is held until LoadAssignment
 * @param backend                ExpertBackend by name: cpu, or noop (identity experts, for hop benchmarks)
 * @param maxInboundMessageBytes largest gRPC message accepted (an ExpertBatch of a long prefill chunk is big), >= 65536
 * @param shutdownGrace          how long in-flight calls may finish on shutdown, >= 0
 * @param drainGrace             how long requests carrying the previous placement epoch are still served
 * @param computeThreads         ExpertBatch worker threads; 0 = one per available processor
 * @param maxQueuedBatches       batches that may wait for a worker; beyond that RESOURCE_EXHAUSTED
 * @param inlineMaxTokens        batches of at most this many tokens are computed on the gRPC transport thread that
 *                               read them (no worker wake-up), within the backend's own bound (noop: any size;
 *                               cpu: 1-4 tokens, the weight-read-bound passes of decoding one to a few sequences),
 *                               with at most that many tokens' routed pairs (top-k plus the shared expert each) and
 *                               with their experts resident; 0 = always a worker
 * @param smallBatchKernelThreads kernel threads (the computing thread included) that the cpu backend splits one batch
 *                               of at most 4 tokens over; 0 (default) = every core ({@code moemesh.kernel.threads})
 * @param largeBatchKernelThreads the same for a batch of more than 4 tokens. Both for instances that share a host's
 *                               cores ({@link io.moemesh.expert.backend.KernelThreads}): a step of many sequences keeps
 *                               every instance computing at once, and so does a step of a few when every instance
 *                               holds every expert and the gateway spreads each token's experts over them.
 *                               {@code ./moemesh up} sets cores ÷ expert instances for large batches, and for small
 *                               ones when every instance holds every expert
 * @param streamWindow           unanswered messages one ExpertBatch stream may have (gRPC flow control)
 * @param nativeCacheDir         where native libraries (JavaCPP/OpenBLAS) are unpacked and loaded from, unless
 *                               {@code -Dorg.bytedeco.javacpp.cachedir} is set; must be writable. Created 0700 when
 *                               absent; one another user owns or could write stops the startup
 *                               ({@code NativeCacheDirectory}). Null: the model's default,
 *                               {@code ${user.home}/.cache/moemesh/native}, where such a directory only leaves
 *                               OpenBLAS unloaded (the Vector API kernels compute), with a warning
 * @param tls                    the gRPC port's transport security, {@code moemesh.expert.tls.*} ({@link TlsSettings}):
 *                               mutual TLS by default (cert-chain, private-key and ca-bundle files required; startup
 *                               fails naming them when they are missing); plaintext only with {@code mode=plaintext}
 * @param placerIdentities       mesh identities (the NAME of a certificate's {@code spiffe://moemesh/NAME} SAN) that may
 *                               call LoadAssignment; everyone else gets PERMISSION_DENIED. Default: {@code placer}
 *                               (the local launcher) and {@code router} (the router-service). In plaintext mode there
 *                               is no identity and LoadAssignment is open to any caller
 * @param maxEpochJump           largest step from the served placement epoch to a new one that LoadAssignment accepts;
 *                               a bigger jump (a corrupt or forged epoch, e.g. 2^64-1, after which no placement could
 *                               follow) is refused with FAILED_PRECONDITION and the served epoch stays
 */
@ConfigurationProperties("moemesh.expert")
public record ExpertProperties(
        Path modelDir,
        @DefaultValue("expert-0") String instanceId,
        @DefaultValue("0") int deviceSlot,
        @DefaultValue("8589934592") long memoryBudgetBytes,
        @DefaultValue("127.0.0.1") String grpcHost,
        @DefaultValue("9100") int grpcPort,
        Path placementFile,
        @DefaultValue("false") boolean assignAll,
        @DefaultValue("cpu") String backend,
        @DefaultValue("268435456") int maxInboundMessageBytes,
        @DefaultValue("10s") Duration shutdownGrace,
        @DefaultValue("10s") Duration drainGrace,
        @DefaultValue("0") int computeThreads,
        @DefaultValue("256") int maxQueuedBatches,
        @DefaultValue("64") int streamWindow,
        Path nativeCacheDir,
        @DefaultValue TlsSettings tls,
        @DefaultValue({"placer", "router"}) Set<String> placerIdentities,
        @DefaultValue("1000") long maxEpochJump,
        @DefaultValue("32") int inlineMaxTokens,
        Path grpcUnixSocket,
        @DefaultValue("peer-uid") UnixSocketSecurity unixSocketSecurity,
        @DefaultValue("0") int smallBatchKernelThreads,
        @DefaultValue("0") int largeBatchKernelThreads) {

    public ExpertProperties {
        if (modelDir == null || modelDir.toString().isBlank()) {
            throw new IllegalArgumentException("moemesh.expert.model-dir (environment MOEMESH_EXPERT_MODEL_DIR) is "
                    + "required: the Hugging Face model directory whose experts this instance serves");
        }
        require(instanceId != null && !instanceId.isBlank(), "instance-id must not be blank");
        require(deviceSlot >= 0, "device-slot must be >= 0, got " + deviceSlot);
        require(memoryBudgetBytes >= 0, "memory-budget-bytes must be >= 0, got " + memoryBudgetBytes);
        require(grpcPort >= 0 && grpcPort <= 65535, "grpc-port must be in [0, 65535], got " + grpcPort);
        if (grpcUnixSocket != null) {
            grpcUnixSocket = InstanceEndpoint.socketPath("moemesh.expert.grpc-unix-socket", grpcUnixSocket.toString());
        }
        unixSocketSecurity = unixSocketSecurity == null ? UnixSocketSecurity.PEER_UID : unixSocketSecurity;
        // As the gateway's and the kvcache-service's floor: a smaller limit refuses ordinary batches.
        require(maxInboundMessageBytes >= 65536, "max-inbound-message-bytes must be >= 65536, got "
                + maxInboundMessageBytes);
        require(shutdownGrace != null && !shutdownGrace.isNegative(), "shutdown-grace must be >= 0, got "
                + shutdownGrace);
        require(backend != null && ExpertBackends.NAMES.contains(backend.strip().toLowerCase(Locale.ROOT)),
                "backend must be one of " + String.join(", ", ExpertBackends.NAMES) + ", got \"" + backend + "\"");
        require(computeThreads >= 0, "compute-threads must be >= 0 (0 = one per processor)");
        require(maxQueuedBatches >= 0, "max-queued-batches must be >= 0");
        require(inlineMaxTokens >= 0, "inline-max-tokens must be >= 0 (0 = never inline)");
        require(smallBatchKernelThreads >= 0,
                "small-batch-kernel-threads must be >= 0 (0 = every core), got " + smallBatchKernelThreads);
        require(largeBatchKernelThreads >= 0,
                "large-batch-kernel-threads must be >= 0 (0 = every core), got " + largeBatchKernelThreads);
        require(streamWindow >= 1, "stream-window must be >= 1");
        require(drainGrace != null && !drainGrace.isNegative(), "drain-grace must be >= 0, got " + drainGrace);
        require(placementFile == null || !assignAll, "set placement-file or assign-all, not both");
        require(maxEpochJump >= 1, "max-epoch-jump must be >= 1, got " + maxEpochJump);
        placerIdentities = Set.copyOf(placerIdentities == null ? Set.of() : placerIdentities);
        for (String id : placerIdentities) {
            try {
                new MeshIdentity(id);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("moemesh.expert.placer-identities: " + e.getMessage(), e);
            }
        }
        tls = (tls == null ? new TlsSettings(null, null, null, null, null) : tls).validated("moemesh.expert.tls");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("moemesh.expert." + message);
        }
    }

    public int effectiveComputeThreads() {
        return computeThreads > 0 ? computeThreads : Runtime.getRuntime().availableProcessors();
    }
}
