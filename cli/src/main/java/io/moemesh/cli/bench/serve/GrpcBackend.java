package io.moemesh.cli.bench.serve;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.ModelInfoResponse;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import java.util.HashSet;
import java.util.Iterator;
import java.util.OptionalInt;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The gateway's gRPC API ({@code moemesh.gateway.v1.GatewayService}): {@code Generate} streams one message per
 * step; a message counts as a chunk when it carries token ids (the first message only echoes the request id, the
 * last one carries usage). Prompts go as {@code prompt_ids} when known, so lengths are exact.
 */
public final class GrpcBackend implements StreamingBackend {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final String endpoint;
    private final ManagedChannel channel;
    private final GatewayServiceGrpc.GatewayServiceBlockingStub stub;

    /** @param apiKey sent as {@code authorization: Bearer} metadata; null or empty = none */
    public GrpcBackend(Endpoint endpoint, String apiKey) {
        String host = endpoint.host().replaceAll("^\\[|]$", "");
        this.endpoint = endpoint.host() + ":" + endpoint.port();
        this.channel = NettyChannelBuilder.forAddress(host, endpoint.port()).usePlaintext()
                .maxInboundMessageSize(64 << 20).build();
        GatewayServiceGrpc.GatewayServiceBlockingStub s = GatewayServiceGrpc.newBlockingStub(channel);
        if (apiKey != null && !apiKey.isEmpty()) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + apiKey);
            s = s.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        this.stub = s;
    }

    @Override
    public ModelDescription describe(String model) {
        ModelInfoResponse info;
        try {
            info = stub.withDeadlineAfter(30, TimeUnit.SECONDS)
                    .modelInfo(ModelInfoRequest.newBuilder().setModel(model == null ? "" : model).build());
        } catch (StatusRuntimeException e) {
            throw new IllegalArgumentException("--endpoint " + endpoint + ": gRPC ModelInfo failed: "
                    + ConnectionFailures.describe(e.getStatus()));
        }
        Set<Integer> eos = new HashSet<>(info.getEosTokenIdsList());
        int context = info.getMaxPositionEmbeddings();
        return new ModelDescription(info.getModel(), context > 0 ? OptionalInt.of(context) : OptionalInt.empty(),
                OptionalInt.of(info.getVocabSize()),
                info.hasBosTokenId() ? OptionalInt.of(info.getBosTokenId()) : OptionalInt.empty(), eos);
    }

    /** The gateway's tokenization of {@code text} (BOS included when the model adds one). */
    public int[] tokenize(String model, String text) {
        try {
            return stub.withDeadlineAfter(30, TimeUnit.SECONDS)
                    .tokenize(TokenizeRequest.newBuilder().setModel(model).setText(text).build())
                    .getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
        } catch (StatusRuntimeException e) {
            throw new IllegalArgumentException("--endpoint " + endpoint + ": gRPC Tokenize failed: "
                    + ConnectionFailures.describe(e.getStatus()));
        }
    }

    @Override
    public RequestOutcome send(RequestSpec spec, BenchPrompt prompt) throws InterruptedException {
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setModel(spec.model())
                .setSampling(SamplingParams.newBuilder().setMaxTokens(prompt.maxTokens())
                        .setTemperature((float) spec.temperature()).setIgnoreEos(spec.ignoreEos()));
        if (prompt.ids() != null) {
            PromptIds.Builder ids = PromptIds.newBuilder();
            for (int id : prompt.ids()) {
                ids.addTokenIds(id);
            }
            b.setPromptIds(ids);
        } else {
            b.setPrompt(prompt.text());
        }
        GenerateRequest request = b.build();
        long start = System.nanoTime();
        StreamTimer timer = new StreamTimer(start);
        int promptTokens = prompt.promptTokens();
        int outputTokens = 0;
        int usageTokens = -1;
        try {
            Iterator<GenerateResponse> stream = stub.generate(request);
            while (stream.hasNext()) {
                GenerateResponse r = stream.next();
                long now = System.nanoTime();
                if (r.getTokenIdsCount() > 0) {
                    timer.onChunk(now);
                    outputTokens += r.getTokenIdsCount();
                }
                if (r.getPromptTokens() > 0) {
                    promptTokens = r.getPromptTokens();
                }
                if (r.hasUsage()) {
                    usageTokens = r.getUsage().getCompletionTokens();
                    promptTokens = r.getUsage().getPromptTokens();
                }
                if (r.getFinishReason() == FinishReason.FINISH_REASON_ERROR
                        || r.getFinishReason() == FinishReason.FINISH_REASON_CANCELLED) {
                    return RequestOutcome.failed("gRPC " + r.getFinishReason() + ": " + r.getError().getMessage(),
                            promptTokens);
                }
            }
        } catch (StatusRuntimeException e) {
            if (Thread.currentThread().isInterrupted()) {
                throw new InterruptedException("cancelled");
            }
            return RequestOutcome.failed("gRPC " + ConnectionFailures.describe(e.getStatus()), promptTokens);
        }
        return timer.finish(promptTokens, usageTokens >= 0 ? usageTokens : outputTokens);
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
